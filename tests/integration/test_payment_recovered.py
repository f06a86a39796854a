"""A paid invoice ends a payment-failure case, and the first one after a withdrawal verifies its save early,
through intake, diagnosis and outreach on the real broker and database; every other payment is an ignored
webhook that publishes nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from services.intake.service import NO_PAYMENT_FAILURE_REASON
from tests.conftest import STRIPE_SECRET, Brink, eventually, outreach_from_scratch, start_brink
from tests.helpers import signed, stripe_event, stripe_subscription
from tests.intake_helpers import (
    CHARGEBEE_PASSWORD,
    CHARGEBEE_USER,
    chargebee_event,
    chargebee_subscription,
    delivery_row,
    post_chargebee,
    staged_events,
)


@pytest.fixture
async def brink(database_url: str, amqp_url: str) -> AsyncIterator[Brink]:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(outreach_from_scratch(database_url))
        yield await start_brink(
            stack,
            database_url=database_url,
            amqp_url=amqp_url,
            chargebee_webhook_username=CHARGEBEE_USER,
            chargebee_webhook_password=CHARGEBEE_PASSWORD,
        )


async def case_of(brink: Brink, cancellation_id: str, *, closed: bool = False) -> dict[str, Any] | None:
    response = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"limit": 500})
    for case in response.json()["items"]:
        if case["cancellation_id"] == cancellation_id and (case["status"] != "open") == closed:
            return case
    return None


def _chargebee_payment(event_type: str, subscription: dict[str, Any], *, version: int, paid: bool) -> dict[str, Any]:
    invoice = {
        "id": f"inv_{uuid.uuid4().hex[:8]}",
        "subscription_id": subscription["id"],
        "customer_id": subscription["customer_id"],
        "status": "paid" if paid else "payment_due",
        "dunning_status": None if paid else "exhausted",
        "next_retry_at": None,
        "total": 10_000,
        "resource_version": version,
        "object": "invoice",
    }
    transaction = {
        "id": f"txn_{uuid.uuid4().hex[:8]}",
        "subscription_id": subscription["id"],
        "status": "success" if paid else "failure",
        "amount": 10_000,
        "resource_version": version,
        "object": "transaction",
    }
    return chargebee_event(event_type, subscription, source="scheduled_job", invoice=invoice, transaction=transaction)


async def test_chargebee_payment_failed_then_succeeded_closes_the_case(brink: Brink) -> None:
    failed_at = int(time.time() * 1000) - 60_000
    subscription = chargebee_subscription(status="active", resource_version=failed_at)
    cancellation_id = f"chargebee:{subscription['id']}"
    failed = _chargebee_payment("payment_failed", subscription, version=failed_at, paid=False)
    assert (await post_chargebee(brink.intake, failed)).status_code == 200
    case = await eventually(lambda: case_of(brink, cancellation_id))
    assert case["root_cause"] == "payment_failure" and case["initiated_by"] == "billing_system"

    # The subscription itself did not change: the payment's own versions order it after the failure.
    paid = _chargebee_payment("payment_succeeded", subscription, version=failed_at + 30_000, paid=True)
    assert (await post_chargebee(brink.intake, paid)).status_code == 200

    closed = await eventually(lambda: case_of(brink, cancellation_id, closed=True))
    assert closed["id"] == case["id"] and closed["status"] == "stayed_unprompted"
    assert closed["closed_reason"] == "cancellation withdrawn: payment_recovered"
    [withdrawn] = [
        e for e in await staged_events(brink.apps["intake"], cancellation_id) if e["type"].endswith("withdrawn")
    ]
    assert withdrawn["data"]["reason"] == "payment_recovered"


async def test_stripe_final_payment_failure_then_invoice_paid_is_a_verified_save(brink: Brink) -> None:
    subscription_id, customer = f"sub_{uuid.uuid4().hex[:14]}", f"cus_{uuid.uuid4().hex[:14]}"
    cancellation_id = f"stripe:{subscription_id}"
    now = int(time.time())
    invoice = {
        "id": f"in_{uuid.uuid4().hex[:14]}",
        "object": "invoice",
        "customer": customer,
        "subscription": subscription_id,
        "status": "open",
        "next_payment_attempt": None,
        "attempt_count": 4,
        "currency": "usd",
        "lines": {
            "object": "list",
            "data": [
                {
                    "amount": 14_700,
                    "currency": "usd",
                    "quantity": 3,
                    "price": {"id": "price_starter", "unit_amount": 4_900, "recurring": {"interval": "month"}},
                    "type": "subscription",
                }
            ],
        },
    }
    failed = stripe_event("invoice.payment_failed", invoice, created=now - 120, request_id=None)
    body, headers = signed(failed, STRIPE_SECRET)
    assert (await brink.intake.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
    case = await eventually(lambda: case_of(brink, cancellation_id))
    reached = await brink.outreach.post(
        f"/v1/tasks/{case['tasks'][0]['id']}/complete",
        headers=brink.auth,
        json={"result": "reached", "note": "sent the card update link"},
    )
    assert reached.status_code == 200

    paid = stripe_event("invoice.paid", invoice | {"status": "paid"}, created=now - 60, request_id=None)
    succeeded = stripe_event("invoice.payment_succeeded", invoice | {"status": "paid"}, created=now - 60)
    for event in (paid, succeeded):
        body, headers = signed(event, STRIPE_SECRET)
        assert (await brink.intake.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200

    closed = await eventually(lambda: case_of(brink, cancellation_id, closed=True))
    assert (closed["status"], closed["save_status"]) == ("saved", "verified")
    # Stripe sends both events for one payment: the second finds the subscription active again.
    second = await delivery_row(brink.apps["intake"], "stripe", succeeded["id"])
    assert second is not None and (second.outcome, second.outcome_reason) == ("ignored", NO_PAYMENT_FAILURE_REASON)


async def test_an_ordinary_payment_publishes_nothing(brink: Brink) -> None:
    subscription = chargebee_subscription(status="active")
    payment = _chargebee_payment("payment_succeeded", subscription, version=int(time.time() * 1000), paid=True)
    invoice = {"id": "in_ordinary", "object": "invoice", "customer": "cus_ordinary", "subscription": "sub_ordinary"}
    monthly = stripe_event("invoice.paid", invoice)
    body, headers = signed(monthly, STRIPE_SECRET)

    assert (await post_chargebee(brink.intake, payment)).status_code == 200
    answer = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)

    assert answer.json() == {"outcome": "ignored", "event_id": monthly["id"], "reason": NO_PAYMENT_FAILURE_REASON}
    for source, event_id in (("chargebee", payment["id"]), ("stripe", monthly["id"])):
        row = await delivery_row(brink.apps["intake"], source, event_id)
        assert row is not None and (row.outcome, row.published_type) == ("ignored", None)
    assert await staged_events(brink.apps["intake"], f"chargebee:{subscription['id']}") == []
    assert await staged_events(brink.apps["intake"], "stripe:sub_ordinary") == []


async def _post_stripe(brink: Brink, event: dict[str, Any]) -> dict[str, Any]:
    body, headers = signed(event, STRIPE_SECRET)
    answer = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_the_first_invoice_paid_after_a_withdrawal_verifies_the_save_early(brink: Brink) -> None:
    now = int(time.time())
    subscription = stripe_subscription(status="active", canceled_at=None, ended_at=None)
    cancellation_id = f"stripe:{subscription['id']}"
    scheduled = subscription | {"cancel_at_period_end": True}
    await _post_stripe(
        brink,
        stripe_event(
            "customer.subscription.updated",
            scheduled,
            created=now - 300,
            previous_attributes={"cancel_at_period_end": False},
        ),
    )
    case = await eventually(lambda: case_of(brink, cancellation_id))
    reached = await brink.outreach.post(
        f"/v1/tasks/{case['tasks'][0]['id']}/complete", headers=brink.auth, json={"result": "reached"}
    )
    assert reached.status_code == 200
    await _post_stripe(
        brink,
        stripe_event(
            "customer.subscription.updated",
            subscription,
            created=now - 200,
            previous_attributes={"cancel_at_period_end": True},
        ),
    )
    saved = await eventually(lambda: case_of(brink, cancellation_id, closed=True))
    assert (saved["status"], saved["save_status"]) == ("saved", "pending")

    invoice = {"id": f"in_{uuid.uuid4().hex[:14]}", "object": "invoice", "customer": subscription["customer"]}
    invoice |= {"subscription": subscription["id"], "status": "paid"}
    # Paid before the withdrawal, delivered after it: not the next invoice; nothing is published.
    late = await _post_stripe(brink, stripe_event("invoice.paid", invoice, created=now - 250))
    assert late["outcome"] == "ignored"
    assert [e["type"] for e in await staged_events(brink.apps["intake"], cancellation_id)][-1].endswith("withdrawn")

    renewal = invoice | {"id": f"in_{uuid.uuid4().hex[:14]}"}
    paid = stripe_event("invoice.paid", renewal, created=now - 100)
    assert (await _post_stripe(brink, paid))["outcome"] == "accepted"
    # Stripe's second event for the same payment publishes nothing more.
    twin = await _post_stripe(brink, stripe_event("invoice.payment_succeeded", renewal, created=now - 100))
    assert twin["outcome"] == "ignored"

    async def verified() -> dict[str, Any] | None:
        found = await case_of(brink, cancellation_id, closed=True)
        return found if found and found["save_status"] == "verified" else None

    await eventually(verified)
    case = (await brink.outreach.get(f"/v1/cases/{saved['id']}", headers=brink.auth)).json()
    assert case["events"][-1]["kind"] == "save_verified" and paid["id"] in case["events"][-1]["detail"]["reason"]
    [published] = [e for e in await staged_events(brink.apps["intake"], cancellation_id) if e["type"] == "invoice.paid"]
    assert published["data"]["state_version"] == now - 100
