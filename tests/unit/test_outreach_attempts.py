"""Placing cancellations and withdrawals of one subscription in its attempts to leave, by billing version."""

from __future__ import annotations

import pytest

from services.outreach.attempts import (
    Known,
    Placement,
    WithdrawalEffect,
    place_cancellation,
    place_withdrawal,
)


@pytest.mark.parametrize(
    ("version", "known", "placement", "after"),
    [
        (100, Known(), Placement.OPEN, 0),  # the first attempt
        (300, Known(open_case_after=200), Placement.UPDATE_OPEN, 200),  # cancel_at moved
        (100, Known(open_case_after=200), Placement.LATE_COPY, 200),  # an earlier attempt's report
        (300, Known(latest_case_after=0, staying_version=200), Placement.OPEN, 200),  # cancelled again
        (100, Known(latest_case_after=0, staying_version=200), Placement.LATE_COPY, 0),  # a late duplicate
        (100, Known(staying_version=200), Placement.OPEN_WITHDRAWN, 0),  # withdrawn before its diagnosis
        (200, Known(staying_version=200), Placement.OPEN_TIED, 0),  # the same second
        (150, Known(latest_case_after=0, staying_version=200), Placement.LATE_COPY, 0),  # moved, then withdrawn
        (150, Known(latest_case_after=0), Placement.LATE_COPY, 0),  # its case was closed by hand: not reopened
        (500, Known(latest_case_after=0, staying_version=400, previous_staying_version=200), Placement.OPEN, 400),
        (
            300,
            Known(latest_case_after=0, staying_version=400, previous_staying_version=200),
            Placement.OPEN_WITHDRAWN,
            200,
        ),
        (0, Known(staying_version=0), Placement.OPEN_WITHDRAWN, 0),  # no versions: the withdrawal counts as newer
    ],
)
def test_a_cancellation_is_placed_by_its_billing_version(
    version: int, known: Known, placement: Placement, after: int
) -> None:
    place = place_cancellation(version, known)
    assert (place.placement, place.after_version) == (placement, after)


@pytest.mark.parametrize(
    ("version", "staying", "open_case", "effect"),
    [
        (200, None, 100, WithdrawalEffect.ENDS_CASE),
        (100, None, 100, WithdrawalEffect.TIE),
        (100, None, 300, WithdrawalEffect.OVERTAKEN),
        (200, 200, 100, WithdrawalEffect.ALREADY_KNOWN),
        (150, 200, None, WithdrawalEffect.ALREADY_KNOWN),
        (200, None, None, WithdrawalEffect.NO_OPEN_CASE),
        (0, None, 100, WithdrawalEffect.ENDS_CASE),  # no version: applied as it comes, as before
    ],
)
def test_a_withdrawal_is_placed_by_its_billing_version(
    version: int, staying: int | None, open_case: int | None, effect: WithdrawalEffect
) -> None:
    assert place_withdrawal(version, staying_version=staying, open_case_version=open_case) is effect
