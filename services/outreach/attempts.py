"""Which attempt to leave an event belongs to, and what it does to the cases. Plain Python.

A subscription's billing events come in attempts: cancellations (a cancellation, a moved ``cancel_at``, a
final failed payment) until a withdrawal (the scheduled cancellation removed, a reactivation, a recovered
payment) ends the attempt. Each attempt gets one case. Events reach outreach on two queues in any order,
so they are placed by their billing versions: an attempt is named by the version of the withdrawal it came
after (0 for the first), and a case remembers it (``after_version``).

Version 0 means the source gave none (events from before versions were carried): such a withdrawal is
taken to be newer than any cancellation, as before, and such a cancellation as part of the current attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# A task reached the customer when it faces them (not the internal closing decision) and its result says
# someone spoke with them: the line between ``saved`` and ``stayed_unprompted``.
CONTACT_RESULTS = frozenset({"reached", "declined", "accepted_offer"})
INTERNAL_ACTIONS = frozenset({"closing"})
TIE_NOTE = (
    "a withdrawal and a cancellation carry the same billing version; which came last is unknown: "
    "decide by hand after checking the subscription"
)


@dataclass(frozen=True)
class Known:
    """What outreach holds about a subscription when a cancellation's diagnosis arrives."""

    open_case_after: int | None = None  # the open case's attempt, if a case is open
    latest_case_after: int | None = None  # the newest case's attempt, if there is a case
    staying_version: int | None = None  # the newest withdrawal, if one was received
    previous_staying_version: int = 0  # the withdrawal before that one


class Placement(StrEnum):
    UPDATE_OPEN = "update_open"  # a newer report of the open case's attempt
    LATE_COPY = "late_copy"  # an earlier attempt's report, or one whose case is closed: nothing opens
    OPEN = "open"  # a new attempt: open a case
    OPEN_TIED = "open_tied"  # a new attempt whose withdrawal carries the same version: open, a person decides
    OPEN_WITHDRAWN = "open_withdrawn"  # a new attempt already withdrawn: keep the case, closed at once


@dataclass(frozen=True)
class CancellationPlace:
    placement: Placement
    after_version: int = 0


def place_cancellation(version: int, known: Known) -> CancellationPlace:
    """Where a cancellation reported at billing ``version`` belongs."""
    if known.open_case_after is not None:
        if version and version <= known.open_case_after:
            return CancellationPlace(Placement.LATE_COPY, known.open_case_after)
        return CancellationPlace(Placement.UPDATE_OPEN, known.open_case_after)
    staying = known.staying_version
    if staying is None or (version > staying and staying):
        after, placement = staying or 0, Placement.OPEN
    elif version == staying and staying:
        after, placement = known.previous_staying_version, Placement.OPEN_TIED
    elif version and staying and version <= known.previous_staying_version:
        return CancellationPlace(Placement.LATE_COPY, known.previous_staying_version)
    else:  # older than the newest withdrawal (or either carries no version): withdrawn before its diagnosis
        after, placement = known.previous_staying_version, Placement.OPEN_WITHDRAWN
    if known.latest_case_after is not None and known.latest_case_after >= after:
        return CancellationPlace(Placement.LATE_COPY, after)  # that attempt has its case already
    return CancellationPlace(placement, after)


class WithdrawalEffect(StrEnum):
    ALREADY_KNOWN = "already_known"  # this withdrawal, or a newer one, was applied before
    ENDS_CASE = "ends_case"  # newer than the open case's cancellation: the customer stays
    TIE = "tie"  # the same version as the open case's cancellation: which came last is unknown
    OVERTAKEN = "overtaken"  # older than the open case's newest cancellation: the customer left again
    NO_OPEN_CASE = "no_open_case"  # remembered for a diagnosis still on its way (or after a closed case)


def place_withdrawal(version: int, *, staying_version: int | None, open_case_version: int | None) -> WithdrawalEffect:
    """What a withdrawal at billing ``version`` does, given the newest withdrawal and the open case."""
    if staying_version is not None and version and version <= staying_version:
        return WithdrawalEffect.ALREADY_KNOWN
    if open_case_version is None:
        return WithdrawalEffect.NO_OPEN_CASE
    if not version or not open_case_version or version > open_case_version:
        return WithdrawalEffect.ENDS_CASE
    if version == open_case_version:
        return WithdrawalEffect.TIE
    return WithdrawalEffect.OVERTAKEN
