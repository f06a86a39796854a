"""Group commit on the real PostgreSQL: deliveries recorded together get the outcomes one at a time would give."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.intake.mapping_common import Ignored
from services.intake.postgres_deliveries import APPLICATION_NAME, PostgresDeliveries, asyncpg_dsn
from services.intake.service import Delivery, PreparedDelivery, prepare
from services.intake.stripe_mapping import map_stripe_event
from shared import metrics
from shared.db import utcnow
from tests.helpers import stripe_event, stripe_subscription


def delivery(event: dict, *, payload_json: str | None = None) -> PreparedDelivery:
    try:
        mapped, reason = map_stripe_event(event), None
    except Ignored as ignored:
        mapped, reason = None, str(ignored)
    arrived = Delivery(
        source="stripe",
        external_id=event["id"],
        event_type=event["type"],
        payload=event,
        correlation_id=str(uuid.uuid4()),
        payload_json=payload_json or json.dumps(event),
    )
    return prepare(arrived, mapped, reason, received_at=utcnow())


def cancellation(*, subscription_id: str | None = None, created: int | None = None) -> dict:
    return stripe_event(
        "customer.subscription.deleted", stripe_subscription(subscription_id=subscription_id), created=created
    )


def commits_so_far() -> tuple[float, float]:
    """(statements, deliveries) counted by brink_intake_deliveries_per_commit in this process."""
    sample = {s.name: s.value for metric in metrics.DELIVERIES_PER_COMMIT.collect() for s in metric.samples}
    return sample["brink_intake_deliveries_per_commit_count"], sample["brink_intake_deliveries_per_commit_sum"]


@pytest.fixture
async def deliveries(postgres_url: str) -> AsyncIterator[PostgresDeliveries]:
    recorder = PostgresDeliveries(asyncpg_dsn(postgres_url), max_connections=4)
    await recorder.start()
    yield recorder
    await recorder.close()


@pytest.fixture
async def database(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(asyncpg_dsn(postgres_url))
    yield connection
    await connection.close()


async def test_deliveries_arriving_together_share_commits_and_get_the_outcomes_of_one_at_a_time(
    deliveries: PostgresDeliveries, database: asyncpg.Connection
) -> None:
    distinct = [cancellation() for _ in range(30)]
    retried = cancellation()
    subscription = f"sub_{uuid.uuid4().hex[:14]}"
    versions = [
        cancellation(subscription_id=subscription, created=created)
        for created in (1_700_000_100, 1_700_000_300, 1_700_000_200)
    ]
    arriving = [*distinct, retried, retried, *versions]
    statements_before, rows_before = commits_so_far()

    outcomes = await asyncio.gather(*(deliveries.record(delivery(event)) for event in arriving))

    assert outcomes[:30] == ["accepted"] * 30
    assert outcomes[30:32] == ["accepted", "duplicate"]
    assert outcomes[32:] == ["accepted", "accepted", "superseded"]  # the older version, arriving last, loses
    statements, rows = commits_so_far()
    assert rows - rows_before == len(arriving)
    assert statements - statements_before <= 10  # 35 deliveries, a handful of commits
    ids = [event["id"] for event in arriving]
    staged = await database.fetchval(
        "SELECT count(*) FROM intake_outbox o JOIN intake_webhook_events e ON e.correlation_id = o.correlation_id"
        " WHERE e.external_id = ANY($1::text[])",
        ids,
    )
    assert staged == 33  # every accepted delivery, once
    assert (
        await database.fetchval(
            "SELECT state_version FROM intake_subscription_states WHERE source = 'stripe' AND subscription_id = $1",
            subscription,
        )
        == 1_700_000_300
    )


async def test_a_delivery_the_database_refuses_fails_alone_and_its_batch_is_stored(
    deliveries: PostgresDeliveries, database: asyncpg.Connection
) -> None:
    good = [cancellation() for _ in range(12)]
    refused = cancellation()
    arriving = [delivery(event) for event in good[:6]]
    arriving.append(delivery(refused, payload_json='{"id": "not json'))
    arriving += [delivery(event) for event in good[6:]]

    results = await asyncio.gather(*(deliveries.record(each) for each in arriving), return_exceptions=True)

    assert isinstance(results[6], asyncpg.DataError)
    assert [result for n, result in enumerate(results) if n != 6] == ["accepted"] * 12
    stored = await database.fetch(
        "SELECT external_id FROM intake_webhook_events WHERE external_id = ANY($1::text[])",
        [event["id"] for event in [*good, refused]],
    )
    assert {row["external_id"] for row in stored} == {event["id"] for event in good}


async def delivery_backends(database: asyncpg.Connection) -> set[int]:
    rows = await database.fetch(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
        APPLICATION_NAME,
    )
    return {row["pid"] for row in rows}


async def test_connections_plan_each_statement_while_the_inbox_is_small_and_keep_one_plan_once_it_has_grown(
    postgres_url: str, database: asyncpg.Connection
) -> None:
    inbox = await database.fetchval("SELECT pg_relation_size('intake_webhook_events')")
    grown_at = inbox + 64 * 1024
    recorder = PostgresDeliveries(
        asyncpg_dsn(postgres_url), max_connections=2, generic_plan_after_bytes=grown_at, recheck_every=10
    )
    await recorder.start()
    try:
        assert await recorder.record(delivery(cancellation())) == "accepted"
        assert recorder.plans_each_statement
        planning = await delivery_backends(database)
        assert len(planning) == 1
        while await database.fetchval("SELECT pg_relation_size('intake_webhook_events')") < grown_at:
            event = cancellation()
            event["data"]["object"]["metadata"] = {"note": uuid.uuid4().hex * 40}  # 1,280 bytes that do not compress
            assert await recorder.record(delivery(event)) == "accepted"
        for _ in range(10):
            assert await recorder.record(delivery(cancellation())) == "accepted"
        assert not recorder.plans_each_statement
        # The connections made while the inbox was small are replaced, and their replacements keep one plan.
        assert await recorder.record(delivery(cancellation())) == "accepted"
        assert not recorder.plans_each_statement
        assert not planning & await delivery_backends(database)
    finally:
        await recorder.close()
