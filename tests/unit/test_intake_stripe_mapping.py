"""Stripe events become the right Brink events, with reasons, initiator, MRR and dates kept apart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.intake.mapping_common import Ignored
from services.intake.stripe_mapping import map_stripe_event
from shared.events import CancellationReceived, CancellationWithdrawn
from tests.helpers import stripe_event, stripe_subscription

T = 1_790_000_000


def updated(subscription: dict, previous: dict, **kwargs) -> dict:
    return stripe_event("customer.subscription.updated", subscription, previous_attributes=previous, **kwargs)


def test_deleted_is_received_now_with_reasons_kept_apart() -> None:
    subscription = stripe_subscription(
        reason="cancellation_requested", feedback="missing_features", comment="No SSO", ended_at=T, canceled_at=T - 5
    )
    event = map_stripe_event(stripe_event("customer.subscription.deleted", subscription, created=T))
    assert isinstance(event, CancellationReceived)
    assert (event.billing_reason, event.feedback, event.comment) == (
        "cancellation_requested",
        "missing_features",
        "No SSO",
    )
    assert event.scheduled is False and event.involuntary is False
    assert event.effective_at == datetime.fromtimestamp(T, UTC)
    assert event.cancellation_id == f"stripe:{subscription['id']}"
    assert event.account_id == f"stripe:{subscription['customer']}"
    assert event.mrr is not None and (event.mrr.amount_minor, event.mrr.currency) == (49000, "usd")
    assert event.state_version == T and event.livemode is False


def test_deleted_by_stripe_itself_after_failed_payments_is_involuntary() -> None:
    subscription = stripe_subscription(reason="payment_failed", feedback=None)
    event = map_stripe_event(stripe_event("customer.subscription.deleted", subscription, request_id=None))
    assert event.initiated_by == "billing_system"
    assert event.involuntary is True and event.billing_reason == "payment_failed" and event.feedback is None


def test_a_request_id_means_a_person_asked() -> None:
    event = map_stripe_event(stripe_event("customer.subscription.deleted", stripe_subscription(), request_id="req_1"))
    assert (event.initiated_by, event.initiated_by_detail) == ("customer", "req_1")


def test_cancel_at_period_end_turned_true_is_a_scheduled_cancellation_at_period_end() -> None:
    subscription = stripe_subscription(
        status="active", cancel_at_period_end=True, canceled_at=T, ended_at=None, current_period_end=T + 86400
    )
    event = map_stripe_event(updated(subscription, {"cancel_at_period_end": False, "canceled_at": None}))
    assert isinstance(event, CancellationReceived)
    assert event.scheduled is True
    assert event.effective_at == datetime.fromtimestamp(T + 86400, UTC)


def test_cancel_at_alone_schedules_a_cancellation_at_that_date() -> None:
    subscription = stripe_subscription(status="active", cancel_at=T + 7 * 86400, ended_at=None)
    event = map_stripe_event(updated(subscription, {"cancel_at": None}))
    assert isinstance(event, CancellationReceived) and event.scheduled is True
    assert event.effective_at == datetime.fromtimestamp(T + 7 * 86400, UTC)


def test_period_end_is_read_from_the_items_in_newer_api_versions() -> None:
    subscription = stripe_subscription(status="active", cancel_at_period_end=True, ended_at=None)
    del subscription["current_period_end"]
    subscription["items"]["data"][0]["current_period_end"] = T + 3 * 86400
    event = map_stripe_event(updated(subscription, {"cancel_at_period_end": False}))
    assert event.effective_at == datetime.fromtimestamp(T + 3 * 86400, UTC)


@pytest.mark.parametrize(
    ("now", "previous", "effective"),
    [
        ({"cancel_at": T + 9 * 86400}, {"cancel_at": T + 5 * 86400}, T + 9 * 86400),  # cancel_at moved
        ({"cancel_at_period_end": True}, {"cancel_at": T, "cancel_at_period_end": False}, T + 86400),  # to period end
    ],
)
def test_a_moved_scheduled_date_is_a_newer_report_of_the_scheduled_cancellation(
    now: dict, previous: dict, effective: int
) -> None:
    subscription = stripe_subscription(status="active", ended_at=None, current_period_end=T + 86400, **now)
    event = map_stripe_event(updated(subscription, previous))
    assert isinstance(event, CancellationReceived) and event.scheduled is True
    assert event.effective_at == datetime.fromtimestamp(effective, UTC)


@pytest.mark.parametrize(
    "now, previous",
    [
        ({"cancel_at_period_end": False}, {"cancel_at_period_end": True}),
        ({"cancel_at": None}, {"cancel_at": T + 86400}),
    ],
)
def test_removing_a_scheduled_cancellation_withdraws_it(now: dict, previous: dict) -> None:
    subscription = stripe_subscription(status="active", ended_at=None, canceled_at=None, **now)
    event = map_stripe_event(updated(subscription, previous))
    assert isinstance(event, CancellationWithdrawn)
    assert event.reason == "scheduled_cancellation_removed"
    assert event.cancellation_id == f"stripe:{subscription['id']}"


def test_a_subscription_resumed_from_pause_is_withdrawn() -> None:
    subscription = stripe_subscription(status="active", ended_at=None, canceled_at=None)
    event = map_stripe_event(updated(subscription, {"status": "paused"}))
    assert isinstance(event, CancellationWithdrawn) and event.reason == "resumed_from_paused"


@pytest.mark.parametrize(
    "now, previous",
    [
        ({}, {"metadata": {"plan": None}}),  # nothing about cancelling changed
        ({"cancel_at_period_end": True}, {"metadata": {}}),  # already scheduled before
        ({"cancel_at": T + 86400}, {"cancel_at": T + 86400}),  # the same date, re-sent
    ],
)
def test_other_updates_are_ignored_with_a_reason(now: dict, previous: dict) -> None:
    subscription = stripe_subscription(status="active", ended_at=None, **now)
    with pytest.raises(Ignored, match="not its cancellation"):
        map_stripe_event(updated(subscription, previous))


def test_mrr_is_monthly_minor_units_over_items_quantities_and_intervals() -> None:
    subscription = stripe_subscription()
    subscription["items"]["data"] = [
        {
            "quantity": 3,
            "price": {
                "id": "price_y",
                "currency": "eur",
                "unit_amount": 120000,
                "recurring": {"interval": "year", "interval_count": 1},
            },
        },
        {
            "quantity": 1,
            "price": {
                "id": "price_q",
                "currency": "eur",
                "unit_amount": 9000,
                "recurring": {"interval": "month", "interval_count": 3},
            },
        },
        {
            "quantity": 2,
            "price": {
                "id": "price_w",
                "currency": "eur",
                "unit_amount": 1200,
                "recurring": {"interval": "week", "interval_count": 1},
            },
        },
    ]
    event = map_stripe_event(stripe_event("customer.subscription.deleted", subscription))
    # 3 x 1200.00/year = 300.00/month; 90.00 per quarter = 30.00/month; 2 x 12.00/week = 104.00/month
    assert [line.mrr_minor for line in event.plans] == [30000, 3000, 10400]
    assert event.mrr is not None and event.mrr.amount_minor == 43400 and event.mrr.currency == "eur"


def test_the_older_top_level_plan_shape_is_understood() -> None:
    subscription = stripe_subscription()
    del subscription["items"]
    subscription["plan"] = {
        "id": "gold",
        "object": "plan",
        "amount": 24000,
        "currency": "usd",
        "interval": "year",
        "interval_count": 1,
        "name": "Gold",
    }
    subscription["quantity"] = 2
    event = map_stripe_event(stripe_event("customer.subscription.deleted", subscription))
    assert event.plans[0].plan_id == "gold" and event.plans[0].name == "Gold"
    assert event.mrr is not None and event.mrr.amount_minor == 4000


def test_mixed_currencies_leave_the_total_unknown_rather_than_wrong() -> None:
    subscription = stripe_subscription()
    subscription["items"]["data"].append(
        {
            "quantity": 1,
            "price": {"id": "p2", "currency": "gbp", "unit_amount": 100, "recurring": {"interval": "month"}},
        }
    )
    assert map_stripe_event(stripe_event("customer.subscription.deleted", subscription)).mrr is None


def test_account_id_comes_from_the_customer_metadata_when_present() -> None:
    subscription = stripe_subscription(
        customer={
            "id": "cus_1",
            "object": "customer",
            "email": "a@b.co",
            "name": "Acme",
            "metadata": {"account_id": "acct-42"},
        }
    )
    event = map_stripe_event(stripe_event("customer.subscription.deleted", subscription))
    assert (event.account_id, event.customer_id, event.customer_email, event.customer_name) == (
        "acct-42",
        "cus_1",
        "a@b.co",
        "Acme",
    )


def test_livemode_is_carried() -> None:
    raw = stripe_event("customer.subscription.deleted", stripe_subscription())
    raw["livemode"] = True
    assert map_stripe_event(raw).livemode is True


def invoice(**fields) -> dict:
    base = {
        "id": "in_1",
        "object": "invoice",
        "customer": "cus_9",
        "customer_email": "bill@acme.test",
        "subscription": "sub_9",
        "attempt_count": 4,
        "next_payment_attempt": None,
        "livemode": False,
        "lines": {
            "data": [
                {
                    "type": "subscription",
                    "quantity": 2,
                    "price": {
                        "id": "price_1",
                        "currency": "usd",
                        "unit_amount": 1500,
                        "recurring": {"interval": "month"},
                    },
                }
            ]
        },
    }
    base.update(fields)
    return base


def test_last_failed_payment_is_an_involuntary_cancellation_risk() -> None:
    event = map_stripe_event(stripe_event("invoice.payment_failed", invoice(), created=T, request_id=None))
    assert isinstance(event, CancellationReceived)
    assert (event.billing_reason, event.involuntary, event.initiated_by) == ("payment_failed", True, "billing_system")
    assert event.cancellation_id == "stripe:sub_9" and event.customer_email == "bill@acme.test"
    assert event.mrr is not None and event.mrr.amount_minor == 3000
    assert event.effective_at == datetime.fromtimestamp(T, UTC)


def test_newer_invoices_name_their_subscription_under_parent() -> None:
    raw = invoice(subscription=None, parent={"subscription_details": {"subscription": "sub_new"}})
    assert map_stripe_event(stripe_event("invoice.payment_failed", raw)).subscription_id == "sub_new"


def test_a_failed_payment_with_retries_left_is_ignored() -> None:
    with pytest.raises(Ignored, match="retry"):
        map_stripe_event(stripe_event("invoice.payment_failed", invoice(next_payment_attempt=T + 86400)))


def test_a_failed_one_off_invoice_is_ignored() -> None:
    with pytest.raises(Ignored, match="no subscription"):
        map_stripe_event(stripe_event("invoice.payment_failed", invoice(subscription=None)))


def test_other_event_types_are_ignored() -> None:
    with pytest.raises(Ignored, match=r"customer\.created"):
        map_stripe_event(stripe_event("customer.created", {"id": "cus_1", "object": "customer"}))


def test_a_mapped_type_without_its_object_is_a_bad_event() -> None:
    raw = stripe_event("customer.subscription.deleted", {})
    raw["data"] = {}
    with pytest.raises(ValueError, match=r"data\.object"):
        map_stripe_event(raw)


@pytest.mark.parametrize("event_type", ["invoice.paid", "invoice.payment_succeeded"])
def test_a_paid_subscription_invoice_is_a_recovery_and_a_one_off_invoice_is_ignored(event_type: str) -> None:
    invoice = {"id": "in_1", "customer": "cus_1", "subscription": "sub_1", "status": "paid"}
    withdrawn = map_stripe_event(stripe_event(event_type, invoice, created=1_790_000_000))
    assert isinstance(withdrawn, CancellationWithdrawn)
    assert (withdrawn.cancellation_id, withdrawn.reason, withdrawn.state_version) == (
        "stripe:sub_1",
        "payment_recovered",
        1_790_000_000,
    )
    with pytest.raises(Ignored, match="no subscription"):
        map_stripe_event(stripe_event(event_type, {"id": "in_2", "customer": "cus_1", "subscription": None}))
