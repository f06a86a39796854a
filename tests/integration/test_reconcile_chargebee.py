"""Reconciliation against a server in Chargebee's documented shape, read through the official ``chargebee`` library."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from structlog.testing import capture_logs

from services.intake.models import ReconcileCursor, WebhookEvent
from shared.db import make_engine, make_sessionmaker
from shared.migrate import upgrade
from tests.billing_helpers import CHARGEBEE_KEY, CHARGEBEE_SITE, FakeChargebee, fake_chargebee
from tests.conftest import Brink, eventually, new_postgres_database, start_brink
from tests.intake_helpers import CHARGEBEE_PASSWORD, CHARGEBEE_USER, intake_settings, post_chargebee, running_intake

OVERLAP_SECONDS = 120


def reconciling(server: FakeChargebee, **overrides: Any) -> dict[str, Any]:
    return {
        "chargebee_site": CHARGEBEE_SITE,
        "chargebee_api_key": CHARGEBEE_KEY,
        "chargebee_api_base": server.url,
        "chargebee_webhook_username": CHARGEBEE_USER,
        "chargebee_webhook_password": CHARGEBEE_PASSWORD,
        "reconcile_interval_seconds": 3600,
        "reconcile_overlap_seconds": OVERLAP_SECONDS,
        "reconcile_first_days": 1,
        "billing_backoff_seconds": 0.05,
        **overrides,
    }


@asynccontextmanager
async def sqlite_database(directory: Path) -> AsyncIterator[str]:
    url = f"sqlite+aiosqlite:///{directory / 'reconcile.db'}"
    await asyncio.to_thread(upgrade, url)
    yield url


async def inbox(database_url: str, event_id: str) -> list[WebhookEvent]:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            query = select(WebhookEvent).where(WebhookEvent.source == "chargebee", WebhookEvent.external_id == event_id)
            return list((await session.scalars(query)).all())
    finally:
        await engine.dispose()


async def cursor_after(database_url: str, before: Any = None) -> ReconcileCursor | None:
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            found = await session.get(ReconcileCursor, "chargebee")
    finally:
        await engine.dispose()
    return found if found is not None and (before is None or found.read_until > before) else None


async def cases_of(brink: Brink, event: dict[str, Any]) -> list[dict[str, Any]]:
    account = f"chargebee:{event['content']['subscription']['customer_id']}"
    response = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"limit": 500})
    return [case for case in response.json()["items"] if case["account_id"] == account]


def listings(server: FakeChargebee) -> list[dict[str, str]]:
    return [request.query for request in server.stand_in.requests_to("/api/v2/events") if request.status == 200]


async def test_missed_cancellations_open_cases_once_and_the_cursor_survives_a_restart(
    amqp_url: str, tmp_path: Path
) -> None:
    async with fake_chargebee() as server, sqlite_database(tmp_path) as database_url:
        # Intake is down while one customer cancels and another schedules a cancellation.
        missed = [server.cancel(), server.cancel(scheduled=True)]
        server.record("subscription_created")  # not about a cancellation: never listed

        async with AsyncExitStack() as stack:
            brink = await start_brink(
                stack, database_url=database_url, amqp_url=amqp_url, consumers_first=True, **reconciling(server)
            )
            for event in missed:
                [case] = await eventually(lambda e=event: cases_of(brink, e), timeout=30)
                assert case["status"] == "open"
                [row] = await inbox(database_url, event["id"])
                assert row.received_via == "reconciliation" and row.outcome == "accepted"
            first_run = await eventually(lambda: cursor_after(database_url))
            assert all("subscription_created" not in query["event_type[in]"] for query in listings(server))

            # This one arrives by webhook too (Chargebee delivers it and keeps it listable).
            delivered = server.cancel()
            response = await post_chargebee(brink.intake, delivered)
            assert response.json()["outcome"] == "accepted"
            await eventually(lambda: cases_of(brink, delivered), timeout=30)

        late = server.cancel()  # missed while intake is stopped again
        listed_before = len(listings(server))
        async with AsyncExitStack() as stack:
            restarted = reconciling(server, reconcile_interval_seconds=1)
            brink = await start_brink(
                stack, database_url=database_url, amqp_url=amqp_url, consumers_first=True, **restarted
            )
            await eventually(lambda: cases_of(brink, late), timeout=30)
            [late_row] = await inbox(database_url, late["id"])
            assert late_row.received_via == "reconciliation"
            await eventually(lambda: cursor_after(database_url, first_run.read_until))
            # The first listing after the restart began at the stored cursor less the overlap.
            resumed_after = int(first_run.read_until.timestamp() - OVERLAP_SECONDS) - 1
            assert listings(server)[listed_before]["occurred_at[after]"] == str(resumed_after)
            [delivered_row] = await inbox(database_url, delivered["id"])
            assert delivered_row.received_via == "webhook"
            assert len(await cases_of(brink, delivered)) == 1


async def test_rate_limiting_and_an_outage_are_retried_and_the_run_resumes(amqp_url: str, tmp_path: Path) -> None:
    async with fake_chargebee() as server, sqlite_database(tmp_path) as database_url:
        first = server.cancel()
        server.stand_in.faults = [429, 503]  # rate-limited, then down for a moment: the third try succeeds
        settings = intake_settings(database_url=database_url, amqp_url=amqp_url, **reconciling(server))
        async with running_intake(settings):
            [row] = await eventually(lambda: inbox(database_url, first["id"]), timeout=30)
            assert row.received_via == "reconciliation"
            before = await eventually(lambda: cursor_after(database_url))
        assert [request.status for request in server.stand_in.requests_to("/api/v2/events")][:3] == [429, 503, 200]

        # Down for longer than a run's retries: the run fails and the cursor stays; the next run finds the event.
        second = server.cancel()
        server.stand_in.faults = [503] * 3
        settings = intake_settings(
            database_url=database_url,
            amqp_url=amqp_url,
            **reconciling(server, billing_attempts=3, reconcile_interval_seconds=0.5),
        )
        async with running_intake(settings):
            await eventually(lambda: inbox(database_url, second["id"]), timeout=30)
            await eventually(lambda: cursor_after(database_url, before.read_until))


async def test_two_intake_instances_list_once(amqp_url: str) -> None:
    async with fake_chargebee() as server, new_postgres_database("brink_reconcile_cb_two") as database_url:
        event = server.cancel()
        settings = intake_settings(
            database_url=database_url, amqp_url=amqp_url, **reconciling(server, reconcile_lease_seconds=1.5)
        )
        async with running_intake(settings) as (first, _), running_intake(settings) as (second, _):
            reconcilers = [first.state.reconciler, second.state.reconciler]
            await eventually(lambda: _all_looked(reconcilers))
            await eventually(lambda: inbox(database_url, event["id"]), timeout=30)
            await eventually(lambda: cursor_after(database_url))
            assert sorted(bool(r.holds_turn) for r in reconcilers) == [False, True]
            assert len(listings(server)) == 1  # one page, listed by one instance


async def _all_looked(reconcilers: list[Any]) -> bool:
    return all(r.holds_turn is not None for r in reconcilers)


async def test_a_refused_key_is_said_once_naming_the_setting(amqp_url: str, tmp_path: Path) -> None:
    async with fake_chargebee() as server, sqlite_database(tmp_path) as database_url:
        wrong_key = "live_revoked_" + "8" * 20
        settings = intake_settings(
            database_url=database_url,
            amqp_url=amqp_url,
            **reconciling(server, chargebee_api_key=wrong_key, reconcile_interval_seconds=0.2),
        )
        with capture_logs() as logs:
            async with running_intake(settings) as (_app, client):
                await eventually(lambda: _refused_twice(server))
                delivered = server.cancel()
                response = await post_chargebee(client, delivered)
                assert response.status_code == 200 and response.json()["outcome"] == "accepted"
        refused = [line for line in logs if line["event"] == "intake.reconcile.key_refused"]
        assert len(refused) == 1
        assert refused[0]["setting"] == "BRINK_CHARGEBEE_API_KEY" and refused[0]["status"] == 401
        assert wrong_key not in repr(logs)


async def _refused_twice(server: FakeChargebee) -> bool:
    return len([r for r in server.stand_in.requests_to("/api/v2/events") if r.status == 401]) >= 2
