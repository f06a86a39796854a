"""Retention: what it deletes, what it keeps (everything still needed to de-duplicate), and how it goes about it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.diagnosis.models import handled
from services.intake.models import WebhookEvent, outbox
from shared.db import insert_many_if_new, make_engine, make_sessionmaker, transaction, utcnow
from shared.migrate import upgrade
from shared.retention import (
    RetentionWorker,
    handled_message_ids,
    lock_key,
    received_deliveries,
    sent_outbox_rows,
)
from tests.conftest import eventually, new_postgres_database
from tests.helpers import counting_statements, outbox_rows, stripe_event, stripe_subscription
from tests.intake_helpers import intake_settings, post_stripe, running_intake

RETENTION = timedelta(days=35)
inbox = WebhookEvent.__table__


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database of this test's own: retention deletes by age, whichever test wrote the rows."""
    if request.param == "postgres":
        async with new_postgres_database("brink_retention") as url:
            yield url
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'brink.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url


@pytest.fixture
async def engine(fresh_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(fresh_url)
    yield engine
    await engine.dispose()


def worker(engine: AsyncEngine) -> RetentionWorker:
    return RetentionWorker(
        service="intake",
        engine=engine,
        expiries=(sent_outbox_rows(outbox), handled_message_ids(handled), received_deliveries(inbox)),
        max_age=RETENTION,
        pause_seconds=0,
    )


async def add_outbox_rows(engine: AsyncEngine, *, count: int, age: timedelta, sent_after: timedelta | None) -> None:
    """``count`` outbox rows created ``age`` ago, published ``sent_after`` later (never when None)."""
    created = utcnow() - age
    published = None if sent_after is None else created + sent_after
    async with transaction(make_sessionmaker(engine)) as session:
        await session.execute(
            outbox.insert(),
            outbox_rows(count, event_type="test.retention", created_at=created, published_at=published),
        )


async def add_handled(engine: AsyncEngine, *, ids: list[str], age: timedelta) -> None:
    async with transaction(make_sessionmaker(engine)) as session:
        await session.execute(
            handled.insert(),
            [{"consumer": "diagnosis.cancellations", "event_id": id_, "handled_at": utcnow() - age} for id_ in ids],
        )


async def add_deliveries(engine: AsyncEngine, *, external_ids: list[str], age: timedelta) -> None:
    async with transaction(make_sessionmaker(engine)) as session:
        await session.execute(
            inbox.insert(),
            [
                {
                    "source": "stripe",
                    "external_id": external_id,
                    "event_type": "customer.subscription.deleted",
                    "outcome": "accepted",
                    "published_type": "cancellation.received",
                    "correlation_id": external_id,
                    "payload": {"id": external_id},
                    "received_at": utcnow() - age,
                }
                for external_id in external_ids
            ],
        )


async def count(engine: AsyncEngine, table: object, *where: object) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table).where(*where)) or 0)  # type: ignore[arg-type]


async def test_expired_rows_go_and_every_row_still_needed_stays(engine: AsyncEngine) -> None:
    old, recent, edge = timedelta(days=40), timedelta(days=1), timedelta(days=34, hours=23)
    await add_outbox_rows(engine, count=3, age=old, sent_after=timedelta(seconds=1))  # sent 40 days ago: go
    await add_outbox_rows(engine, count=2, age=old, sent_after=None)  # never sent: stay, however old
    await add_outbox_rows(engine, count=4, age=edge, sent_after=timedelta(seconds=1))  # inside the window: stay
    await add_outbox_rows(engine, count=5, age=recent, sent_after=timedelta(seconds=1))
    # Created 40 days ago but sent only 10 days ago (the broker was away): still inside the window.
    await add_outbox_rows(engine, count=1, age=old, sent_after=timedelta(days=30))
    await add_handled(engine, ids=[f"old-{n}" for n in range(6)], age=old)
    await add_handled(engine, ids=[f"kept-{n}" for n in range(7)], age=edge)
    await add_deliveries(engine, external_ids=[f"evt_old_{n}" for n in range(8)], age=old)
    await add_deliveries(engine, external_ids=[f"evt_kept_{n}" for n in range(9)], age=edge)

    report = await worker(engine).purge_once()

    assert report.purged == {"intake_outbox": 3, "diagnosis_handled_messages": 6, "intake_webhook_events": 8}
    assert await count(engine, outbox) == 2 + 4 + 5 + 1
    assert await count(engine, outbox, outbox.c.published_at.is_(None)) == 2
    assert await count(engine, handled, handled.c.event_id.like("kept-%")) == 7
    assert await count(engine, handled) == 7
    assert await count(engine, inbox, inbox.c.external_id.like("evt_kept_%")) == 9
    assert await count(engine, inbox) == 9
    assert (await worker(engine).purge_once()).purged == dict.fromkeys(report.purged, 0)


async def test_a_message_handled_inside_the_window_is_still_a_duplicate_after_a_purge(engine: AsyncEngine) -> None:
    inside, outside = str(uuid.uuid4()), str(uuid.uuid4())
    await add_handled(engine, ids=[inside], age=timedelta(days=34))
    await add_handled(engine, ids=[outside], age=timedelta(days=36))

    await worker(engine).purge_once()

    # The consumer's guard: only ids it has not handled before are inserted, and only those are handled.
    async with transaction(make_sessionmaker(engine)) as session:
        first_time = await insert_many_if_new(
            session,
            handled,
            [
                {"consumer": "diagnosis.cancellations", "event_id": id_, "handled_at": utcnow()}
                for id_ in (inside, outside)
            ],
            returning=handled.c.event_id,
        )
    assert first_time == {outside}


async def test_a_webhook_received_inside_the_window_is_still_a_duplicate_after_a_purge(
    fresh_url: str, amqp_url: str
) -> None:
    subscription = stripe_subscription(status="canceled")
    inside = stripe_event("customer.subscription.deleted", subscription)
    settings = intake_settings(database_url=fresh_url, amqp_url=amqp_url)
    async with running_intake(settings) as (app, client):
        assert (await post_stripe(client, inside)).status_code == 200
        engine = app.state.runtime.engine
        async with engine.begin() as connection:
            await connection.execute(update(inbox).values(received_at=utcnow() - timedelta(days=34)))
        staged = await count(engine, outbox)

        await worker(engine).purge_once()
        again = await post_stripe(client, inside)

        assert again.status_code == 200
        assert await count(engine, inbox, inbox.c.external_id == inside["id"]) == 1
        assert await count(engine, outbox) == staged  # nothing published a second time


async def test_a_long_purge_goes_in_small_batches(engine: AsyncEngine) -> None:
    await add_outbox_rows(engine, count=1_250, age=timedelta(days=50), sent_after=timedelta(seconds=1))
    await add_outbox_rows(engine, count=10, age=timedelta(days=2), sent_after=timedelta(seconds=1))
    purge = RetentionWorker(
        service="intake",
        engine=engine,
        expiries=(sent_outbox_rows(outbox),),
        max_age=RETENTION,
        batch_size=500,
        pause_seconds=0,
    )

    with counting_statements(engine) as statements:
        report = await purge.purge_once()

    assert report.purged == {"intake_outbox": 1_250}
    deletes = [statement for statement in statements if statement.lstrip().upper().startswith("DELETE")]
    assert len(deletes) == 3  # 500, 500, 250: no transaction holds more than a batch of row locks
    assert await count(engine, outbox) == 10


async def test_purged_rows_and_table_sizes_are_on_the_metrics(engine: AsyncEngine) -> None:
    before = REGISTRY.get_sample_value("brink_retention_purged_rows_total", {"table": "intake_webhook_events"}) or 0
    await add_deliveries(engine, external_ids=[f"evt_metric_old_{n}" for n in range(4)], age=timedelta(days=90))
    await add_deliveries(engine, external_ids=[f"evt_metric_new_{n}" for n in range(3)], age=timedelta(hours=1))

    await worker(engine).purge_once()

    after = REGISTRY.get_sample_value("brink_retention_purged_rows_total", {"table": "intake_webhook_events"})
    assert after == before + 4
    if engine.dialect.name == "postgresql":
        assert (REGISTRY.get_sample_value("brink_table_bytes", {"table": "intake_webhook_events"}) or 0) > 0
    else:  # exact on SQLite; PostgreSQL's is the planner's estimate, refreshed by ANALYZE
        assert REGISTRY.get_sample_value("brink_table_rows", {"table": "intake_webhook_events"}) == 3
    assert (REGISTRY.get_sample_value("brink_retention_last_run_timestamp_seconds", {"service": "intake"}) or 0) > 0


@pytest.mark.parametrize("fresh_url", ["postgres"], indirect=True)
async def test_one_purge_at_a_time_across_instances(engine: AsyncEngine, fresh_url: str) -> None:
    await add_deliveries(engine, external_ids=["evt_locked"], age=timedelta(days=40))
    other_instance = await asyncpg.connect(fresh_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await other_instance.fetchval("SELECT pg_try_advisory_lock($1)", lock_key("intake"))

        while_held = await worker(engine).purge_once()

        assert while_held.skipped and await count(engine, inbox) == 1
        # Another service's purge is not held up by intake's.
        diagnosis = RetentionWorker(
            service="diagnosis", engine=engine, expiries=(handled_message_ids(handled),), max_age=RETENTION
        )
        assert not (await diagnosis.purge_once()).skipped
        await other_instance.execute("SELECT pg_advisory_unlock($1)", lock_key("intake"))
    finally:
        await other_instance.close()

    first, second = await worker(engine).purge_once(), await worker(engine).purge_once()

    assert not first.skipped and not second.skipped  # each purge releases the lock when it is done
    assert first.purged["intake_webhook_events"] == 1


async def test_each_service_purges_by_itself_while_it_runs(fresh_url: str, amqp_url: str) -> None:
    settings = intake_settings(database_url=fresh_url, amqp_url=amqp_url, retention_interval_seconds=0.2)
    async with running_intake(settings) as (app, _client):
        engine = app.state.runtime.engine
        await add_deliveries(engine, external_ids=["evt_background_old"], age=timedelta(days=36))
        await add_deliveries(engine, external_ids=["evt_background_new"], age=timedelta(days=1))

        async def only_the_new_one_left() -> bool:
            return await count(engine, inbox) == 1

        await eventually(only_the_new_one_left)
        assert await count(engine, inbox, inbox.c.external_id == "evt_background_new") == 1


@pytest.mark.parametrize("fresh_url", ["postgres"], indirect=True)
async def test_new_rows_reuse_the_space_of_purged_ones_even_without_autovacuum(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("ALTER TABLE intake_outbox SET (autovacuum_enabled = false)"))
    await add_outbox_rows(engine, count=3_000, age=timedelta(days=40), sent_after=timedelta(seconds=1))
    full = await heap_bytes(engine, "intake_outbox")

    assert (await worker(engine).purge_once()).purged["intake_outbox"] == 3_000
    await add_outbox_rows(engine, count=3_000, age=timedelta(days=1), sent_after=timedelta(seconds=1))

    assert await heap_bytes(engine, "intake_outbox") <= full * 1.1  # not twice as big: the space was reused


async def heap_bytes(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT pg_relation_size(CAST(:t AS regclass))"), {"t": table}) or 0)
