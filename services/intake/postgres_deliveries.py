"""On PostgreSQL a webhook delivery is recorded in one statement: one round trip, one commit.

The inbox row, the subscription's newest state and the outbox row are written by one statement of
data-modifying CTEs, which PostgreSQL runs atomically in autocommit. The ORM path
(``service.record_delivery``) does the same in a transaction of four round trips plus BEGIN and COMMIT; at
several hundred webhooks a second those round trips and the ORM's work were most of intake's CPU.
SQLite (the embedded default) keeps the ORM path.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from services.intake.service import SUPERSEDED_REASON, Delivery, Outcome, state_after
from shared.db import utcnow
from shared.events import Envelope, Payload

# $1 source, $2 external id, $3 event type, $4 'ignored' or NULL, $5 ignored reason, $6 published type,
# $7 correlation id, $8 payload, $9 now, $10 subscription id, $11 state, $12 state version,
# $13 envelope id, $14 envelope body, $15 the superseded reason.
# A repeat delivery must not touch the state: the NOT EXISTS sees deliveries committed before this statement,
# and a concurrent copy of the same delivery writes the same state and then loses on the inbox's unique key.
RECORD_DELIVERY = """
WITH newest AS (
    INSERT INTO intake_subscription_states AS known (source, subscription_id, state, state_version, updated_at)
    SELECT $1::text, $10::text, $11::text, $12::bigint, $9::timestamptz
    WHERE $10::text IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM intake_webhook_events WHERE source = $1::text AND external_id = $2::text)
    ON CONFLICT (source, subscription_id) DO UPDATE
        SET state = excluded.state, state_version = excluded.state_version, updated_at = excluded.updated_at
        WHERE known.state_version <= excluded.state_version
    RETURNING 1
), decided AS (
    SELECT CASE WHEN $4::text IS NOT NULL THEN $4::text
                WHEN $10::text IS NULL OR EXISTS (SELECT 1 FROM newest) THEN 'accepted'
                ELSE 'superseded' END AS outcome
), delivery AS (
    INSERT INTO intake_webhook_events (source, external_id, event_type, outcome, outcome_reason, published_type,
                                       correlation_id, payload, received_at)
    SELECT $1::text, $2::text, $3::text, outcome,
           CASE WHEN outcome = 'superseded' THEN $15::text ELSE $5::text END,
           $6::text, $7::text, $8::jsonb, $9::timestamptz
    FROM decided
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING outcome
), staged AS (
    INSERT INTO intake_outbox (event_id, event_type, correlation_id, body, created_at)
    SELECT $13::text, $6::text, $7::text, $14::text, $9::timestamptz FROM delivery WHERE outcome = 'accepted'
)
SELECT outcome FROM delivery
"""


async def keep_session_state(_connection: asyncpg.Connection) -> None:
    """No reset query on release: these connections never change session state, so it would be a wasted round trip."""


class PostgresDeliveries:
    """Intake's own asyncpg pool, used only to record webhook deliveries."""

    def __init__(self, dsn: str, *, max_connections: int) -> None:
        self._dsn = dsn
        self._max_connections = max_connections
        self._pool: asyncpg.Pool | None = None

    async def start(self) -> None:
        # min_size 0: the pool connects on first use, so a database still starting does not stop the service.
        self._pool = await asyncpg.create_pool(self._dsn, min_size=0, max_size=self._max_connections,
                                               reset=keep_session_state)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def record(self, delivery: Delivery, event: Payload | None, ignored_reason: str | None) -> Outcome:
        """Store the delivery, its subscription's newest state and its outbox row; what became of it."""
        assert self._pool is not None, "start() first"
        arguments = delivery_arguments(delivery, event, ignored_reason)
        for retry in (False, True):
            async with self._pool.acquire() as connection:
                try:
                    outcome = await connection.fetchval(RECORD_DELIVERY, *arguments)
                    return outcome or "duplicate"
                except asyncpg.InternalClientError as unusable:
                    # The server ended this connection while it sat idle in the pool (a restart, an idle
                    # timeout) and its "terminating connection" was read before its close, so asyncpg refused
                    # to start the statement. Without a reset query on release the pool would hand it out
                    # again: close it. Nothing was sent, so trying once more on another connection is safe.
                    connection.terminate()
                    if retry:
                        raise asyncpg.ConnectionDoesNotExistError(f"no usable connection: {unusable}") from None
        raise AssertionError("unreachable")


def delivery_arguments(delivery: Delivery, event: Payload | None, ignored_reason: str | None) -> list[Any]:
    """The statement's parameters, in order."""
    now = utcnow()
    subscription_id = state = version = envelope_id = body = None
    if event is not None:
        subscription_id = getattr(event, "subscription_id", None) or None
        if subscription_id is not None:
            state, version = state_after(event), event.state_version  # type: ignore[attr-defined]
        envelope = Envelope.wrap(event, correlation_id=delivery.correlation_id, source=f"intake.{delivery.source}")
        envelope_id, body = str(envelope.id), envelope.model_dump_json()
    return [
        delivery.source, delivery.external_id, delivery.event_type,
        "ignored" if event is None else None, ignored_reason,
        event.TYPE if event is not None else None,
        delivery.correlation_id,
        delivery.payload_json or json.dumps(delivery.payload, separators=(",", ":")), now,
        subscription_id, state, version, envelope_id, body, SUPERSEDED_REASON,
    ]


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` as asyncpg takes it."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else database_url
