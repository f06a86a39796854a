"""The billing connections: listings are read to their last page; writes carry an idempotency key derived from our
own ids, also on every retry."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from shared.billing.base import RetryPolicy
from shared.billing.chargebee_connection import ChargebeeConnection
from shared.billing.stripe_connection import StripeConnection
from tests.billing_helpers import (
    CHARGEBEE_KEY,
    CHARGEBEE_SITE,
    STRIPE_KEY,
    StripeAccount,
    fake_chargebee,
    localstripe,
    stripe_front,
)

RETRY = RetryPolicy(attempts=3, backoff_seconds=0.05)
TRIAL_END = int(time.time()) + 30 * 86400


async def test_a_stripe_write_retried_after_a_429_carries_the_same_idempotency_key() -> None:
    async with localstripe() as url, stripe_front(url) as front:
        account = StripeAccount(url)
        _, subscription_id = await account.subscription()
        connection = StripeConnection(api_key=STRIPE_KEY, api_base=front.url, timeout_seconds=5, retry=RETRY)
        front.faults = [429]
        try:
            # A free trial extension, as an offer would apply it.
            updated = await connection.update_subscription(
                subscription_id, {"trial_end": TRIAL_END}, idempotency_key="brink-offer-17"
            )
            with pytest.raises(ValueError, match="idempotency key"):
                await connection.update_subscription(subscription_id, {"metadata": {}}, idempotency_key="")
        finally:
            await connection.close()
            await account.close()
        writes = front.requests_to(f"/v1/subscriptions/{subscription_id}")
        assert [request.status for request in writes] == [429, 200]
        assert [request.headers.get("Idempotency-Key") for request in writes] == ["brink-offer-17"] * 2
        assert updated["trial_end"] == TRIAL_END


async def test_a_chargebee_write_sent_twice_with_one_key_is_applied_once() -> None:
    async with fake_chargebee() as server:
        connection = ChargebeeConnection(
            site=CHARGEBEE_SITE, api_key=CHARGEBEE_KEY, api_base=server.url, timeout_seconds=5, retry=RETRY
        )
        server.stand_in.faults = [503]
        first = await connection.update_subscription("AzSub1", {"plan_quantity": 3}, idempotency_key="brink-offer-18")
        again = await connection.update_subscription("AzSub1", {"plan_quantity": 3}, idempotency_key="brink-offer-18")
        writes = server.stand_in.requests_to("/api/v2/subscriptions/AzSub1")
        assert [request.status for request in writes] == [503, 200, 200]
        assert {request.headers.get("chargebee-idempotency-key") for request in writes} == {"brink-offer-18"}
        assert list(server.writes) == ["brink-offer-18"]  # the second write was a replay, not a new change
        assert first == again and first["plan_quantity"] == "3"


async def test_a_stripe_listing_is_read_to_its_last_page() -> None:
    async with localstripe() as url, stripe_front(url) as front:
        account = StripeAccount(url)
        cancelled = []
        for _ in range(5):
            _, subscription_id = await account.subscription()
            await account.cancel(subscription_id)
            cancelled.append(subscription_id)
        await account.close()
        connection = StripeConnection(
            api_key=STRIPE_KEY, api_base=front.url, timeout_seconds=5, retry=RETRY, page_size=2
        )
        since = datetime.now(UTC) - timedelta(minutes=10)
        try:
            events = [e async for e in connection.list_events(types=["customer.subscription.deleted"], since=since)]
        finally:
            await connection.close()
    assert sorted(event["data"]["object"]["id"] for event in events) == sorted(cancelled)
    pages = [request.query for request in front.requests_to("/v1/events")]
    assert len(pages) == 3 and "starting_after" not in pages[0]
    assert pages[1]["starting_after"] == events[1]["id"] and pages[2]["starting_after"] == events[3]["id"]


async def test_a_chargebee_listing_is_read_to_its_last_page() -> None:
    async with fake_chargebee() as server:
        cancelled = [server.cancel(occurred_at=int(time.time()) - 60 * n) for n in range(5)]
        server.cancel(occurred_at=int(time.time()) - 3600)  # before the listing starts
        connection = ChargebeeConnection(
            site=CHARGEBEE_SITE, api_key=CHARGEBEE_KEY, api_base=server.url, timeout_seconds=5, retry=RETRY, page_size=2
        )
        since = datetime.now(UTC) - timedelta(minutes=10)
        events = [e async for e in connection.list_events(types=["subscription_cancelled"], since=since)]
    assert [event["id"] for event in events] == [event["id"] for event in reversed(cancelled)]  # oldest first
    pages = [request.query for request in server.stand_in.requests_to("/api/v2/events")]
    assert [page.get("offset") for page in pages] == [None, "2", "4"]
