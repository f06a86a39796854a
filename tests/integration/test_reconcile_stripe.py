"""Reconciliation against localstripe: cancellations whose webhooks never came are found and open cases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from sqlalchemy import select
from structlog.testing import capture_logs

from services.intake.models import ReconcileCursor, WebhookEvent
from services.intake.reconciler import MAPPED_TYPES
from services.intake.settings import IntakeSettings
from shared import metrics
from shared.db import make_engine, make_sessionmaker
from tests.billing_helpers import STRIPE_KEY, HttpStandIn, StripeAccount, localstripe, served, stripe_front
from tests.conftest import Brink, eventually, new_postgres_database, start_brink
from tests.helpers import stripe_event, stripe_subscription
from tests.intake_helpers import intake_settings, post_stripe, running_intake

OVERLAP_SECONDS = 120
LISTINGS_PER_RUN = len(MAPPED_TYPES["stripe"])  # one page of each event type the mapping reads


def reconciling(front: HttpStandIn, **overrides: Any) -> dict[str, Any]:
    return {
        "stripe_api_key": STRIPE_KEY,
        "stripe_api_base": front.url,
        "reconcile_interval_seconds": 3600,
        "reconcile_overlap_seconds": OVERLAP_SECONDS,
        "reconcile_first_days": 1,
        "billing_backoff_seconds": 0.05,
        **overrides,
    }


@asynccontextmanager
async def stripe_world(prefix: str) -> AsyncIterator[tuple[StripeAccount, HttpStandIn, str]]:
    """localstripe, a front before it, and a new database."""
    async with localstripe() as url, stripe_front(url) as front, new_postgres_database(prefix) as database_url:
        account = StripeAccount(url)
        try:
            yield account, front, database_url
        finally:
            await account.close()


async def inbox(database_url: str, subscription_id: str) -> list[WebhookEvent]:
    """The stored deliveries about one subscription."""
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (await session.scalars(select(WebhookEvent).where(WebhookEvent.source == "stripe"))).all()
    finally:
        await engine.dispose()
    return [row for row in rows if row.payload["data"]["object"]["id"] == subscription_id]


async def cursor(database_url: str) -> ReconcileCursor | None:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            return await session.get(ReconcileCursor, "stripe")
    finally:
        await engine.dispose()


async def cases_of(brink: Brink, customer_id: str) -> list[dict[str, Any]]:
    response = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"limit": 500})
    return [case for case in response.json()["items"] if case["account_id"] == f"stripe:{customer_id}"]


def listings(front: HttpStandIn) -> list[dict[str, str]]:
    return [request.query for request in front.requests_to("/v1/events") if request.status == 200]


async def test_missed_cancellations_open_cases_once_and_the_cursor_survives_a_restart(amqp_url: str) -> None:
    async with stripe_world("brink_reconcile_stripe") as (account, front, database_url):
        # Intake is not running: these two customers leave without a webhook reaching Brink.
        missed = [await account.subscription() for _ in range(2)]
        for _, subscription_id in missed:
            await account.cancel(subscription_id)

        async with AsyncExitStack() as stack:
            brink = await start_brink(
                stack, database_url=database_url, amqp_url=amqp_url, consumers_first=True, **reconciling(front)
            )
            for customer_id, subscription_id in missed:
                opened = await eventually(lambda c=customer_id: cases_of(brink, c), timeout=30)
                assert len(opened) == 1 and opened[0]["status"] == "open"
                assert opened[0]["mrr_minor"] == 3 * 4900
                [row] = await inbox(database_url, subscription_id)
                assert row.received_via == "reconciliation" and row.outcome == "accepted"
            first_run = await eventually(lambda: cursor(database_url))

            # Intake is up and localstripe delivers its webhooks: this cancellation arrives the usual way.
            url = await stack.enter_async_context(served(brink.apps["intake"]))
            await account.deliver_webhooks_to(f"{url}/webhooks/stripe")
            delivered_customer, delivered = await account.subscription()
            await account.cancel(delivered)
            await eventually(lambda: cases_of(brink, delivered_customer), timeout=30)

        # Intake stopped again: this one is missed, and a restart must pick up from the stored cursor.
        late_customer, late = await account.subscription()
        await account.cancel(late)
        listed_before = len(listings(front))
        async with AsyncExitStack() as stack:
            # A shorter interval, so the restarted instance's first look finds a run due.
            restarted = reconciling(front, reconcile_interval_seconds=1)
            brink = await start_brink(
                stack, database_url=database_url, amqp_url=amqp_url, consumers_first=True, **restarted
            )
            await eventually(lambda: cases_of(brink, late_customer), timeout=30)
            [late_row] = await inbox(database_url, late)
            assert late_row.received_via == "reconciliation"
            after_restart = await eventually(lambda: _moved(database_url, first_run.read_until))
            # The listing after the restart started at the stored cursor less the overlap, not a day back.
            resumed_from = int(first_run.read_until.timestamp() - OVERLAP_SECONDS)
            first_listing = listings(front)[listed_before : listed_before + LISTINGS_PER_RUN]
            assert {query["created[gte]"] for query in first_listing} == {str(resumed_from)}
            assert after_restart.read_until > first_run.read_until
            # The webhook-delivered cancellation was listed again after the restart: still one row, one case.
            [delivered_row] = await inbox(database_url, delivered)
            assert delivered_row.received_via == "webhook"
            assert len(await cases_of(brink, delivered_customer)) == 1


async def _moved(database_url: str, before: Any) -> ReconcileCursor | None:
    found = await cursor(database_url)
    return found if found is not None and found.read_until > before else None


def failures(reason: str) -> float:
    return metrics.RECONCILE_FAILURES.labels(source="stripe", reason=reason)._value.get()


async def test_rate_limited_and_down_billing_api_is_retried_and_nothing_is_lost(amqp_url: str) -> None:
    async with stripe_world("brink_reconcile_faults") as (account, front, database_url):
        _, first = await account.subscription()
        await account.cancel(first)
        front.faults = [429]  # the first request is rate-limited, its retry succeeds
        settings = intake_settings(database_url=database_url, amqp_url=amqp_url, **reconciling(front))
        async with running_intake(settings):
            [row] = await eventually(lambda: inbox(database_url, first), timeout=30)
            assert row.received_via == "reconciliation"
            before = await eventually(lambda: cursor(database_url))
        assert [request.status for request in front.requests_to("/v1/events")][:2] == [429, 200]

        # Now the API is down for longer than one run's retries: the run fails, the cursor stays, the next run
        # (backing off) finds the event.
        _, second = await account.subscription()
        await account.cancel(second)
        unavailable_before = failures("unavailable")
        requests_before = len(front.requests_to("/v1/events"))
        front.faults = [503] * 3
        settings = intake_settings(
            database_url=database_url,
            amqp_url=amqp_url,
            **reconciling(front, billing_attempts=3, reconcile_interval_seconds=0.5),
        )
        async with running_intake(settings):
            [row] = await eventually(lambda: inbox(database_url, second), timeout=30)
            assert row.received_via == "reconciliation"
            after = await eventually(lambda: _moved(database_url, before.read_until))
        assert failures("unavailable") == unavailable_before + 1
        statuses = [request.status for request in front.requests_to("/v1/events")][requests_before:]
        assert statuses[:4] == [503, 503, 503, 200]  # three tries failed the run; the next run went through
        assert after.read_until > before.read_until


async def test_two_intake_instances_take_turns_and_list_once(amqp_url: str) -> None:
    async with stripe_world("brink_reconcile_two") as (account, front, database_url):
        _, subscription_id = await account.subscription()
        await account.cancel(subscription_id)
        settings = intake_settings(
            database_url=database_url, amqp_url=amqp_url, **reconciling(front, reconcile_lease_seconds=1.5)
        )
        async with AsyncExitStack() as first_stack, AsyncExitStack() as second_stack:
            stacks = [first_stack, second_stack]
            apps = [(await stack.enter_async_context(running_intake(settings)))[0] for stack in stacks]
            reconcilers = [app.state.reconciler for app in apps]
            await eventually(lambda: _all_looked(reconcilers))
            await eventually(lambda: inbox(database_url, subscription_id), timeout=30)
            await eventually(lambda: cursor(database_url))  # the run is over
            assert sorted(bool(r.holds_turn) for r in reconcilers) == [False, True]
            # One listing per event type, by the instance holding the turn; the other never listed.
            assert len(listings(front)) == LISTINGS_PER_RUN
            holder = next(n for n, r in enumerate(reconcilers) if r.holds_turn)
            await stacks[holder].aclose()  # the holder stops, releasing its turn
            other = reconcilers[1 - holder]
            # The other takes the turn at its next look, and lists nothing before the interval is up.
            await eventually(lambda: _holds(other))
            assert len(listings(front)) == LISTINGS_PER_RUN


async def _all_looked(reconcilers: list[Any]) -> bool:
    return all(r.holds_turn is not None for r in reconcilers)


async def _holds(reconciler: Any) -> bool:
    return bool(reconciler.holds_turn)


async def test_a_refused_key_is_said_once_and_webhooks_keep_flowing(amqp_url: str) -> None:
    async with stripe_world("brink_reconcile_key") as (_account, front, database_url):
        wrong_key = "rk_test_revoked_" + "9" * 12  # localstripe refuses every key but sk_ ones, as Stripe a revoked one
        refused_before = failures("key_refused")
        settings: IntakeSettings = intake_settings(
            database_url=database_url,
            amqp_url=amqp_url,
            **reconciling(front, stripe_api_key=wrong_key, reconcile_interval_seconds=0.2),
        )
        with capture_logs() as logs:
            async with running_intake(settings) as (_app, client):
                await eventually(lambda: _at_least(lambda: failures("key_refused"), refused_before + 2))
                event = stripe_event("customer.subscription.deleted", stripe_subscription())
                response = await post_stripe(client, event)
                assert response.status_code == 200 and response.json()["outcome"] == "accepted"
        refused = [line for line in logs if line["event"] == "intake.reconcile.key_refused"]
        assert len(refused) == 1  # said once, however many runs were refused
        assert refused[0]["setting"] == "BRINK_STRIPE_API_KEY" and refused[0]["status"] == 401
        assert wrong_key not in repr(logs)


async def _at_least(read: Any, value: float) -> bool:
    return bool(read() >= value)
