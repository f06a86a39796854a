"""Chargebee events become the right Brink events: reasons apart, initiator, MRR, ordering key."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake.chargebee_mapping import map_chargebee_event
from services.intake.mapping_common import Ignored
from shared.events import CancellationReceived, CancellationWithdrawn
from tests.intake_helpers import chargebee_event, chargebee_subscription

T = 1_790_000_000


def test_cancelled_by_chargebee_for_no_card_is_involuntary_and_keeps_both_reasons() -> None:
    subscription = chargebee_subscription(
        cancel_reason="no_card", cancel_reason_code="Card expired", cancelled_at=T, resource_version=T * 1000 + 17
    )
    event = map_chargebee_event(chargebee_event("subscription_cancelled", subscription, source="scheduled_job"))
    assert isinstance(event, CancellationReceived)
    assert (event.billing_reason, event.feedback) == ("no_card", "Card expired")
    assert (event.involuntary, event.initiated_by, event.scheduled) == (True, "billing_system", False)
    assert event.effective_at == datetime.fromtimestamp(T, UTC)
    assert event.state_version == T * 1000 + 17
    assert event.cancellation_id == f"chargebee:{subscription['id']}"
    assert event.account_id == f"chargebee:{subscription['customer_id']}"
    assert (event.customer_email, event.customer_name) == ("ana@example.com", "Ana Lima")


@pytest.mark.parametrize(
    "source, initiator",
    [
        ("portal", "customer"),
        ("hosted_page", "customer"),
        ("admin_console", "staff"),
        ("scheduled_job", "billing_system"),
        ("api", "unknown"),
    ],
)
def test_the_event_source_says_who_initiated_it(source: str, initiator: str) -> None:
    subscription = chargebee_subscription(cancel_reason_code="Too expensive")
    assert (
        map_chargebee_event(chargebee_event("subscription_cancelled", subscription, source=source)).initiated_by
        == initiator
    )


def test_the_chargebee_user_who_made_the_change_is_carried() -> None:
    raw = chargebee_event("subscription_cancelled", chargebee_subscription(), user="csm@vendor.example")
    assert map_chargebee_event(raw).initiated_by_detail == "csm@vendor.example"


def test_cancellation_scheduled_takes_effect_at_cancelled_at() -> None:
    subscription = chargebee_subscription(status="non_renewing", cancelled_at=T + 86400, current_term_end=T + 86400)
    event = map_chargebee_event(chargebee_event("subscription_cancellation_scheduled", subscription))
    assert isinstance(event, CancellationReceived) and event.scheduled is True
    assert event.effective_at == datetime.fromtimestamp(T + 86400, UTC)
    assert event.involuntary is False and event.billing_reason is None


@pytest.mark.parametrize(
    "event_type, reason",
    [
        ("subscription_scheduled_cancellation_removed", "scheduled_cancellation_removed"),
        ("subscription_reactivated", "reactivated"),
    ],
)
def test_removed_or_reactivated_is_withdrawn(event_type: str, reason: str) -> None:
    subscription = chargebee_subscription(status="active", resource_version=T * 1000)
    event = map_chargebee_event(chargebee_event(event_type, subscription))
    assert isinstance(event, CancellationWithdrawn)
    assert (event.reason, event.state_version) == (reason, T * 1000)


def test_plan_amount_yearly_is_normalised_to_monthly_minor_units() -> None:
    subscription = chargebee_subscription(
        plan_amount=960000, plan_unit_price=960000, plan_quantity=1, billing_period_unit="year"
    )
    event = map_chargebee_event(chargebee_event("subscription_cancelled", subscription))
    assert event.mrr is not None and (event.mrr.amount_minor, event.mrr.currency) == (80000, "usd")


def test_plan_quantity_times_unit_price_plus_addons() -> None:
    subscription = chargebee_subscription(
        plan_quantity=5,
        plan_unit_price=2000,
        billing_period=3,
        addons=[{"id": "extra_seats", "quantity": 3, "unit_price": 300}],
    )
    event = map_chargebee_event(chargebee_event("subscription_cancelled", subscription))
    # (5 x 20.00 + 3 x 3.00) every 3 months = 36.33 a month
    assert [line.plan_id for line in event.plans] == ["team-monthly", "extra_seats"]
    assert event.mrr is not None and event.mrr.amount_minor == round(10000 / 3) + 300


def test_subscription_items_count_plans_and_addons_but_not_one_off_charges() -> None:
    subscription = chargebee_subscription(
        subscription_items=[
            {
                "item_price_id": "pro-USD-monthly",
                "item_type": "plan",
                "quantity": 4,
                "unit_price": 5000,
                "amount": 20000,
            },
            {"item_price_id": "sso-USD-monthly", "item_type": "addon", "quantity": 1, "unit_price": 1500},
            {"item_price_id": "setup-USD", "item_type": "charge", "quantity": 1, "unit_price": 99900},
        ]
    )
    event = map_chargebee_event(chargebee_event("subscription_cancelled", subscription))
    assert [line.plan_id for line in event.plans] == ["pro-USD-monthly", "sso-USD-monthly"]
    assert event.mrr is not None and event.mrr.amount_minor == 21500


def test_account_id_from_customer_meta_data() -> None:
    subscription = chargebee_subscription()
    customer = {"id": subscription["customer_id"], "company": "Acme", "meta_data": {"account_id": "acct-7"}}
    event = map_chargebee_event(chargebee_event("subscription_cancelled", subscription, customer=customer))
    assert (event.account_id, event.customer_name) == ("acct-7", "Acme")


def test_payment_failed_after_dunning_is_an_involuntary_risk() -> None:
    subscription = chargebee_subscription(status="active")
    raw = chargebee_event(
        "payment_failed",
        subscription,
        source="scheduled_job",
        invoice={"id": "6", "dunning_status": "exhausted", "next_retry_at": None},
    )
    event = map_chargebee_event(raw)
    assert isinstance(event, CancellationReceived)
    assert (event.billing_reason, event.involuntary, event.initiated_by) == ("payment_failed", True, "billing_system")


def test_payment_failed_with_retries_left_is_ignored() -> None:
    raw = chargebee_event(
        "payment_failed",
        chargebee_subscription(status="active"),
        invoice={"id": "6", "dunning_status": "in_progress", "next_retry_at": T},
    )
    with pytest.raises(Ignored, match="retry"):
        map_chargebee_event(raw)


def test_other_types_are_ignored_and_a_missing_subscription_is_bad() -> None:
    with pytest.raises(Ignored, match="subscription_paused"):
        map_chargebee_event(chargebee_event("subscription_paused", chargebee_subscription(status="paused")))
    raw = chargebee_event("subscription_cancelled", chargebee_subscription())
    del raw["content"]["subscription"]
    with pytest.raises(ValueError, match=r"content\.subscription"):
        map_chargebee_event(raw)


def test_a_payment_that_went_through_is_a_recovery_ordered_by_the_payment_itself() -> None:
    subscription = chargebee_subscription(status="active", resource_version=1_790_000_000_000)
    event = chargebee_event(
        "payment_succeeded",
        subscription,
        transaction={"id": "txn_1", "status": "success", "resource_version": 1_790_000_090_000},
        invoice={"id": "inv_1", "status": "paid", "resource_version": 1_790_000_080_000},
    )
    withdrawn = map_chargebee_event(event)
    assert isinstance(withdrawn, CancellationWithdrawn)
    assert (withdrawn.reason, withdrawn.state_version) == ("payment_recovered", 1_790_000_090_000)
    with pytest.raises(Ignored, match="no subscription"):
        map_chargebee_event({**event, "content": {"transaction": {"id": "txn_2"}}})
