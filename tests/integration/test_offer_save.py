"""The save an offer makes, end to end with the three services on the real database and broker, and Stripe played by
localstripe through the official library: a scheduled cancellation's webhook opens a case; the CSM applies "keep
the subscription" within her limit (twice: once at Stripe); localstripe's subscription no longer cancels; the webhook
of that change closes the case as saved and confirms the offer; the save is verified once its window has passed, and
the summary report counts the customer kept. (localstripe sends no customer.subscription.updated webhooks, so the
test signs and posts them, built from the subscription as localstripe returns it.) The waiting for a manager above
the CSM's limit, the exhausted budget and two approvals at once are in test_offers.py."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from services.outreach.people import add_person
from shared.db import make_engine, make_sessionmaker, transaction
from tests.billing_helpers import STRIPE_KEY, StripeAccount, localstripe, stripe_front
from tests.conftest import Brink, eventually, start_brink
from tests.desk_helpers import wipe
from tests.helpers import stripe_event
from tests.intake_helpers import post_stripe

CSM = "carla@example.com"


class MovableClock:
    """Outreach's clock: the wall clock, moved forward when the weeks pass."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


async def subscription_updated(stripe: StripeAccount, subscription_id: str, **previous: Any) -> dict[str, Any]:
    """Stripe's customer.subscription.updated for the subscription as localstripe has it now."""
    found = await stripe.client.v1.subscriptions.retrieve_async(subscription_id)
    return stripe_event("customer.subscription.updated", found.to_dict(), previous_attributes=previous)


async def case_of(brink: Brink, customer_id: str) -> dict[str, Any] | None:
    found = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"account_id": f"stripe:{customer_id}"})
    items = found.json()["items"]
    return items[0] if items else None


async def test_a_csm_keeps_a_subscription_and_the_save_is_confirmed_by_webhook_and_verified_later(
    database_url: str, amqp_url: str
) -> None:
    await wipe(database_url)
    engine = make_engine(database_url)
    async with transaction(make_sessionmaker(engine)) as session:
        await add_person(session, email=CSM, name="Carla", role="csm", now=datetime.now(UTC))
    await engine.dispose()
    clock = MovableClock()
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(localstripe())
        front = await stack.enter_async_context(stripe_front(url))
        stripe = StripeAccount(url)
        stack.push_async_callback(stripe.close)
        brink = await start_brink(
            stack,
            database_url=database_url,
            amqp_url=amqp_url,
            outreach_clock=clock,
            stripe_api_key=STRIPE_KEY,
            stripe_api_base=front.url,
            billing_backoff_seconds=0.05,
            reconcile_interval_seconds=3600,
            scheduler_poll_seconds=0.2,
        )
        auth = brink.auth

        # The customer schedules the cancellation at Stripe; its webhook reaches intake and outreach opens a case.
        customer_id, subscription_id = await stripe.subscription()
        await stripe.client.v1.subscriptions.update_async(subscription_id, params={"cancel_at_period_end": True})
        scheduled = await subscription_updated(stripe, subscription_id, cancel_at_period_end=False)
        assert (await post_stripe(brink.intake, scheduled)).status_code == 200
        case = await eventually(lambda: case_of(brink, customer_id), timeout=30)
        assert case["status"] == "open" and case["owner"] == CSM and case["mrr_minor"] == 3 * 4900

        # Carla keeps the subscription (it costs nothing: within her limit); a double click applies it once.
        offer = await brink.outreach.post(
            f"/v1/cases/{case['id']}/offers", headers=auth, json={"offer": "keep_subscription", "by": CSM}
        )
        assert offer.status_code == 201, offer.text
        for _ in range(2):
            applied = await brink.outreach.post(
                f"/v1/offers/{offer.json()['id']}/apply", headers=auth, json={"by": CSM}
            )
            assert applied.json()["status"] == "applied", applied.text
        writes = [seen for seen in front.requests_to(f"/v1/subscriptions/{subscription_id}") if seen.method == "POST"]
        assert len(writes) == 1
        at_stripe = await stripe.client.v1.subscriptions.retrieve_async(subscription_id)
        assert at_stripe.cancel_at_period_end is False and at_stripe.status == "active"
        assert applied.json()["confirmed_at"] is None  # read back, but Stripe's own word has not come yet

        # Stripe reports the change: the cancellation is withdrawn, the case closes as saved, the offer is confirmed.
        withdrawn = await subscription_updated(stripe, subscription_id, cancel_at_period_end=True)
        withdrawn["created"] = int(time.time())
        assert (await post_stripe(brink.intake, withdrawn)).status_code == 200

        async def closed() -> dict[str, Any] | None:
            found = (await brink.outreach.get(f"/v1/cases/{case['id']}", headers=auth)).json()
            return found if found["status"] != "open" else None

        ended = await eventually(closed, timeout=30)
        assert (ended["status"], ended["save_status"]) == ("saved", "pending")
        [kept] = (await brink.outreach.get(f"/v1/cases/{case['id']}/offers", headers=auth)).json()["items"]
        assert kept["confirmed_at"] is not None
        assert "offer_confirmed" in [event["kind"] for event in ended["events"]]

        # A month on, the customer is still there: the scheduler verifies the save, and the report counts it kept.
        clock.offset = timedelta(days=31)

        async def verified() -> dict[str, Any] | None:
            found = (await brink.outreach.get(f"/v1/cases/{case['id']}", headers=auth)).json()
            return found if found["save_status"] == "verified" else None

        await eventually(verified, timeout=30)
        report = (await brink.outreach.get("/v1/reports/summary", headers=auth)).json()
        assert report["offers"] == [
            {
                "kind": "keep_subscription",
                "currency": "usd",
                "applied": 1,
                "still_there": 1,
                "pending": 0,
                "not_kept": 0,
                "cost_minor": 0,
                "mrr_kept_minor": 3 * 4900,
                "months_to_recover_cost": 0.0,
            }
        ]
    await wipe(database_url)  # Carla would take later tests' cases
