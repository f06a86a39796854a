"""Outbox health: /readyz fails when events wait too long, and /metrics shows the backlog without /readyz."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import FastAPI

from shared.db import transaction, utcnow
from shared.events import Envelope
from shared.outbox import add_to_outbox, outbox_table
from shared.runtime import Runtime
from shared.settings import BrinkSettings
from shared.web import create_app
from tests.conftest import TOKEN, eventually, settings_for
from tests.ops_helpers import sample

MAX_AGE_SECONDS = 5


@asynccontextmanager
async def outbox_runtime(database_url: str, amqp_url: str) -> AsyncIterator[Runtime]:
    """A Runtime with an outbox table of its own, connected to the broker, its relay not running."""
    table = outbox_table(f"opstest_{uuid.uuid4().hex[:8]}")
    settings = settings_for(
        BrinkSettings,
        database_url=database_url,
        amqp_url=amqp_url,
        outbox_max_age_seconds=MAX_AGE_SECONDS,
        metrics_refresh_seconds=0.1,
    )
    runtime = Runtime(service="opstest", settings=settings, outbox=table)
    async with runtime.engine.begin() as connection:
        await connection.run_sync(table.create)
    await runtime.broker.connect()
    try:
        yield runtime
    finally:
        async with runtime.engine.begin() as connection:
            await connection.run_sync(table.drop)
        table.metadata.remove(table)
        await runtime.stop()


async def stage_events(runtime: Runtime, *, count: int, age_seconds: float) -> None:
    """Put events in the outbox as if they had been written ``age_seconds`` ago."""
    assert runtime.outbox is not None
    async with transaction(runtime.sessions) as session:
        for _ in range(count):
            await add_to_outbox(
                session, runtime.outbox, Envelope(type="opstest.ping", correlation_id="ops", source="opstest", data={})
            )
        await session.execute(runtime.outbox.update().values(created_at=utcnow() - timedelta(seconds=age_seconds)))


def readiness_app(runtime: Runtime) -> FastAPI:
    @asynccontextmanager
    async def no_lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield

    return create_app(
        service="opstest",
        title="ops",
        description="ops",
        lifespan=no_lifespan,
        readiness=runtime.readiness(),
        api_tokens=[TOKEN],
    )


async def test_readyz_fails_while_the_oldest_outbox_event_is_older_than_the_limit(
    database_url: str, amqp_url: str
) -> None:
    async with outbox_runtime(database_url, amqp_url) as runtime:
        transport = httpx.ASGITransport(app=readiness_app(runtime))
        async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
            assert (await client.get("/readyz")).status_code == 200

            await stage_events(runtime, count=1, age_seconds=1)
            young = await client.get("/readyz")
            assert young.status_code == 200, "a young backlog is normal work, not a failure"

            await stage_events(runtime, count=1, age_seconds=MAX_AGE_SECONDS + 60)
            stuck = await client.get("/readyz")
            assert stuck.status_code == 503
            assert stuck.json()["checks"]["outbox"] == "failing"  # the log has the why; the probe is public
            assert stuck.json()["checks"]["database"] == "ok" and stuck.json()["checks"]["broker"] == "ok"

            assert runtime.relay is not None
            assert await runtime.relay.publish_pending() == 2
            assert (await client.get("/readyz")).status_code == 200


async def test_outbox_backlog_and_age_reach_metrics_without_anyone_calling_readyz(
    database_url: str, amqp_url: str
) -> None:
    async with outbox_runtime(database_url, amqp_url) as runtime:
        assert runtime.outbox is not None
        table = runtime.outbox.name
        runtime.start_metrics()  # stopped by runtime.stop() when the block ends
        await stage_events(runtime, count=3, age_seconds=40)
        await eventually(lambda: asyncio.sleep(0, sample("brink_outbox_backlog", table=table) == 3))
        assert 40 <= sample("brink_outbox_oldest_age_seconds", table=table) < 60

        assert runtime.relay is not None
        await runtime.relay.publish_pending()
        await eventually(lambda: asyncio.sleep(0, sample("brink_outbox_backlog", table=table) == 0))
        assert sample("brink_outbox_oldest_age_seconds", table=table) == 0
        assert sample("brink_outbox_published_total", table=table) == 3
