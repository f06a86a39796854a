"""The escalation ladder: who is next when a customer goes dark. Plain Python, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rung:
    name: str
    action: str
    owner_role: str
    title: str
    high_value_only: bool = False


LADDER: tuple[Rung, ...] = (
    Rung("cs_manager", "call", "cs_manager", "Escalation: the CS manager calls the customer"),
    Rung("vp_customer_success", "call", "vp_customer_success", "Escalation: the VP of customer success calls"),
    Rung(
        "executive_outreach",
        "executive_outreach",
        "executive_sponsor",
        "Escalation: our executive reaches their executive",
        high_value_only=True,
    ),
    Rung(
        "onsite_visit",
        "onsite_visit",
        "vp_customer_success",
        "Escalation: visit the customer on site",
        high_value_only=True,
    ),
)

# Cheap, repeatable touches; everything else is not repeated while it was tried recently.
REPEATABLE_ACTIONS = frozenset({"call", "email"})


def intervention_key(action: str, offer: str | None = None) -> str:
    """How an intervention is named in the tried-recently set (offers by what they offer)."""
    return f"offer:{offer}" if action == "offer" and offer else action


def was_tried(key: str, tried: set[str]) -> bool:
    """Whether an intervention must be skipped because it was tried recently for the account."""
    return key not in REPEATABLE_ACTIONS and key in tried


def depends_on_tried(
    *, level: int, mrr_minor: int | None, high_value_threshold_minor: int, ladder: tuple[Rung, ...] = LADDER
) -> bool:
    """Whether ``next_rung`` could answer differently for different tried sets: the first rung above ``level``
    that the revenue allows is not repeatable."""
    for rung in ladder[level:]:
        if rung.high_value_only and (mrr_minor or 0) < high_value_threshold_minor:
            continue
        return intervention_key(rung.action) not in REPEATABLE_ACTIONS
    return False


@dataclass(frozen=True)
class Climb:
    """The outcome of one escalation: the rung reached (if any) and the rungs skipped on the way."""

    level: int
    rung: Rung | None
    skipped: tuple[tuple[str, str], ...]


def next_rung(
    *,
    level: int,
    mrr_minor: int | None,
    high_value_threshold_minor: int,
    tried: set[str],
    ladder: tuple[Rung, ...] = LADDER,
) -> Climb:
    """The next rung above ``level`` (1-based count of rungs already climbed) worth climbing."""
    skipped: list[tuple[str, str]] = []
    for index in range(level, len(ladder)):
        rung = ladder[index]
        if rung.high_value_only and (mrr_minor or 0) < high_value_threshold_minor:
            skipped.append((rung.name, "below_revenue_threshold"))
            continue
        if was_tried(intervention_key(rung.action), tried):
            skipped.append((rung.name, "tried_recently"))
            continue
        return Climb(level=index + 1, rung=rung, skipped=tuple(skipped))
    return Climb(level=len(ladder), rung=None, skipped=tuple(skipped))
