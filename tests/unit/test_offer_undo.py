"""What an offer's undo sends, and when it refuses: the parameters its preview fixed, until the date what it gave
begins; a plan's amount brought to a month for the cheaper plan's cost."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.outreach.offer_actions.base import (
    NO_UNDO,
    UNDO,
    UNDO_UNTIL,
    UndoImpossible,
    monthly_minor,
    undo_params,
)

PAID_UNTIL = int(datetime(2027, 1, 1, tzinfo=UTC).timestamp())
FREE_TIME = {
    "update": {"trial_end": PAID_UNTIL + 14 * 86_400},
    UNDO: {"update": {"trial_end": PAID_UNTIL}},
    UNDO_UNTIL: PAID_UNTIL,
}


def test_undo_sends_what_the_preview_fixed_until_what_the_offer_gave_begins() -> None:
    assert undo_params(FREE_TIME, now=datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == {
        "update": {"trial_end": PAID_UNTIL}
    }
    with pytest.raises(UndoImpossible, match="only until 2027-01-01: what it gave has begun"):
        undo_params(FREE_TIME, now=datetime(2027, 1, 1, tzinfo=UTC))


def test_undo_is_refused_with_the_vendors_reason_where_it_has_none() -> None:
    reactivation = {"create": {"customer": "cus_1"}, NO_UNDO: "a reactivation made a new, billed subscription"}
    with pytest.raises(UndoImpossible, match=r"^a reactivation made a new, billed subscription$"):
        undo_params(reactivation, now=datetime(2026, 12, 1, tzinfo=UTC))
    with pytest.raises(UndoImpossible, match="has no undo"):
        undo_params({"update": {"cancel_at_period_end": False}}, now=datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    "amount, quantity, interval, count, monthly",
    [
        (1900, 3, "month", 1, 5700),
        (120_000, 1, "year", 1, 10_000),
        (30_000, 2, "month", 3, 20_000),
        (500, 1, "fortnight", 1, 0),
    ],
)
def test_a_plans_amount_is_brought_to_a_month(
    amount: int, quantity: int, interval: str, count: int, monthly: int
) -> None:
    assert monthly_minor(amount, quantity=quantity, interval=interval, interval_count=count) == monthly
