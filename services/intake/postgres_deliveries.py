"""On PostgreSQL webhook deliveries are recorded by one statement: one round trip, one commit.

A delivery's inbox row, its subscription's newest state and its outbox row are written by one statement of
data-modifying CTEs, which PostgreSQL runs atomically in autocommit; deliveries that arrive while earlier
ones are being written share the next statement (``group_commit``). The portable store
(``repository.PortableDeliveries``) applies the same rules to the same prepared values in a transaction of up
to four round trips plus BEGIN and COMMIT; at several hundred webhooks a second those round trips and the
ORM's work were most of intake's CPU. SQLite (the embedded default) uses the portable store.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.intake.group_commit import GroupCommitter
from services.intake.service import (
    NO_PAYMENT_FAILURE_REASON,
    SUPERSEDED_REASON,
    Outcome,
    PreparedDelivery,
)
from shared import metrics
from shared.db import POSTGRES_SESSION_SETTINGS, is_database_outage
from shared.logs import get_logger

# Each array holds one column of the batch, a row per delivery (see ``service.prepare``); $17 is the superseded
# reason, $18 the reason an ordinary payment is ignored. A payment claims a state only over a payment failure
# (active again) or over a withdrawn cancellation older than it (``invoice_paid``, the withdrawal's version
# kept), and then stages its ``invoice.paid`` envelope instead of the withdrawal. A repeat delivery must not
# touch the state: the NOT EXISTS sees deliveries committed before this statement, and a concurrent copy of the
# same delivery writes the same state and then loses on the inbox's unique key. The group committer never puts
# two deliveries with a key in common in one statement, so the rows do not see each other and the joins on the
# keys below match one row each. 'invoice_paid' and 'invoice.paid' are service.INVOICE_PAID and InvoicePaid.TYPE
# (a test checks).
RECORD_DELIVERIES = """
WITH arrived AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::timestamptz[], $10::text[], $11::text[], $12::bigint[], $13::text[],
                         $14::text[], $15::text[], $16::text[])
        AS a(source, external_id, event_type, ignored, reason, published_type, correlation_id, payload,
             received_at, subscription_id, state, state_version, envelope_id, body, received_via, paid_body)
), payments AS (
    SELECT a.source, a.subscription_id,
           CASE WHEN s.state = 'payment_failed' AND s.state_version <= a.state_version THEN 'active'
                WHEN s.state = 'active' AND s.state_version < a.state_version THEN 'invoice_paid' END AS becomes
    FROM arrived a JOIN intake_subscription_states s ON s.source = a.source AND s.subscription_id = a.subscription_id
    WHERE a.state = 'payment_recovered'
), newest AS (
    INSERT INTO intake_subscription_states AS known (source, subscription_id, state, state_version, updated_at)
    SELECT a.source, a.subscription_id, CASE WHEN a.state = 'payment_recovered' THEN p.becomes ELSE a.state END,
           a.state_version, a.received_at
    FROM arrived a LEFT JOIN payments p ON p.source = a.source AND p.subscription_id = a.subscription_id
    WHERE a.subscription_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM intake_webhook_events e WHERE e.source = a.source AND e.external_id = a.external_id)
      AND (a.state IS DISTINCT FROM 'payment_recovered' OR p.becomes IS NOT NULL)
    ON CONFLICT (source, subscription_id) DO UPDATE
        SET state = excluded.state,
            state_version = CASE WHEN excluded.state = 'invoice_paid' THEN known.state_version
                                 ELSE excluded.state_version END,
            updated_at = excluded.updated_at
        WHERE known.state_version <= excluded.state_version
    RETURNING source, subscription_id, state
), decided AS (
    SELECT a.source, a.external_id, a.event_type, a.ignored, a.reason, a.correlation_id, a.payload, a.received_at,
           a.envelope_id, a.received_via,
           CASE WHEN a.ignored IS NOT NULL THEN a.ignored
                WHEN a.subscription_id IS NULL OR n.state IS NOT NULL THEN 'accepted'
                WHEN a.state = 'payment_recovered' THEN 'ignored'
                ELSE 'superseded' END AS outcome,
           CASE WHEN n.state = 'invoice_paid' THEN 'invoice.paid' ELSE a.published_type END AS published_type,
           CASE WHEN n.state = 'invoice_paid' THEN a.paid_body ELSE a.body END AS body
    FROM arrived a LEFT JOIN newest n ON n.source = a.source AND n.subscription_id = a.subscription_id
), delivery AS (
    INSERT INTO intake_webhook_events (source, external_id, event_type, outcome, outcome_reason, published_type,
                                       correlation_id, payload, received_at, received_via)
    SELECT source, external_id, event_type, outcome,
           CASE WHEN outcome = 'superseded' THEN $17::text
                WHEN outcome = 'ignored' AND ignored IS NULL THEN $18::text ELSE reason END,
           CASE WHEN outcome = 'ignored' THEN NULL ELSE published_type END,
           correlation_id, payload::jsonb, received_at, received_via
    FROM decided
    ON CONFLICT (source, external_id) DO NOTHING
    RETURNING source, external_id, outcome
), staged AS (
    INSERT INTO intake_outbox (event_id, event_type, correlation_id, body, created_at)
    SELECT d.envelope_id, d.published_type, d.correlation_id, d.body, d.received_at
    FROM decided d JOIN delivery r ON r.source = d.source AND r.external_id = d.external_id
    WHERE r.outcome = 'accepted'
)
SELECT source, external_id, outcome FROM delivery
"""
# With 1, 2, 4 or 8 in flight intake alone measured the same within noise; a few rather than one keep a
# statement that waits on a lock from holding up every webhook behind it (see group_commit).
STATEMENTS_IN_FLIGHT = 4
MAX_BATCH = 128


# A prepared statement's plan is made once per connection and kept. Made while the inbox holds a few rows (a
# new installation), it hashes the whole inbox for the repeat check, and every statement after costs more as
# the inbox grows; made on an inbox of a few hundred webhooks (25 pages measured), it probes the inbox's
# index. So a connection plans every statement (0.25 ms more of PostgreSQL's CPU each) while the inbox is
# small, and keeps one plan (the cheaper, by 0.19 against 0.43 ms for one row) once it is not; connections
# made while it was small are replaced when it has grown.
GENERIC_PLAN_MIN_BYTES = 1 << 20
INBOX_BYTES = "coalesce(pg_relation_size(to_regclass('intake_webhook_events')), 0)"
CHOOSE_PLAN_MODE = f"""
SELECT set_config('plan_cache_mode',
                  CASE WHEN {INBOX_BYTES} < $1 THEN 'force_custom_plan' ELSE 'force_generic_plan' END, false)
"""
INBOX_SIZE = f"SELECT {INBOX_BYTES}"
RECHECK_EVERY = 500
APPLICATION_NAME = "brink-intake-deliveries"  # how these connections show in pg_stat_activity

log = get_logger(__name__)


async def keep_session_state(_connection: asyncpg.Connection) -> None:
    """No reset query on release: these connections never change session state, so it would be a wasted round trip."""


class PostgresDeliveries:
    """Intake's own asyncpg pool, used only to record webhook deliveries, several to a statement under load."""

    def __init__(
        self,
        dsn: str,
        *,
        max_connections: int,
        generic_plan_after_bytes: int = GENERIC_PLAN_MIN_BYTES,
        recheck_every: int = RECHECK_EVERY,
    ) -> None:
        self._dsn = dsn
        self._max_connections = max_connections
        self._pool: asyncpg.Pool | None = None
        self._generic_plan_after_bytes = generic_plan_after_bytes
        self._recheck_every = recheck_every
        self._planning_each = False
        self._statements_planned = 0
        self._committer: GroupCommitter[PreparedDelivery, Outcome] = GroupCommitter(
            self._write,
            isolate=lambda error: not is_database_outage(error),
            max_in_flight=min(STATEMENTS_IN_FLIGHT, max_connections),
            max_batch=MAX_BATCH,
            observe_batch=metrics.DELIVERIES_PER_COMMIT.observe,
        )

    async def start(self) -> None:
        # min_size 0: the pool connects on first use, so a database still starting does not stop the service.
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._max_connections,
            reset=keep_session_state,
            init=self._choose_plan_mode,
            server_settings={**POSTGRES_SESSION_SETTINGS, "application_name": APPLICATION_NAME},
        )

    @property
    def plans_each_statement(self) -> bool:
        """True while some delivery connection plans every statement because the inbox was small when it connected."""
        return self._planning_each

    async def _choose_plan_mode(self, connection: asyncpg.Connection) -> None:
        if await connection.fetchval(CHOOSE_PLAN_MODE, self._generic_plan_after_bytes) == "force_custom_plan":
            self._planning_each = True

    async def _replace_planning_connections(self, connection: PoolConnectionProxy[asyncpg.Record]) -> None:
        """Once the inbox has grown, connections that plan every statement are replaced by ones that keep a plan."""
        self._statements_planned += 1
        if self._statements_planned % self._recheck_every:
            return
        try:
            grown = await connection.fetchval(INBOX_SIZE) >= self._generic_plan_after_bytes
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return  # the rows are committed; the size is asked again after the next statements
        if grown and self._pool is not None:
            self._planning_each = False
            await self._pool.expire_connections()
            log.info("intake.deliveries.plan_kept", inbox_bytes_at_least=self._generic_plan_after_bytes)

    async def close(self) -> None:
        await self._committer.drain()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def record(self, row: PreparedDelivery) -> Outcome:
        """Store the delivery, its subscription's newest state and its outbox row; what became of it."""
        assert self._pool is not None, "start() first"
        keys: tuple[tuple[str, ...], ...] = (("event", row.source, row.external_id),)
        if row.subscription_id is not None:
            keys += (("subscription", row.source, row.subscription_id),)
        return await self._committer.submit(row, keys)

    async def _write(self, rows: Sequence[PreparedDelivery]) -> list[Outcome]:
        """One statement for ``rows``; each row's outcome, in order ("duplicate" where the inbox had it)."""
        assert self._pool is not None, "start() first"
        columns = [list(column) for column in zip(*rows, strict=True)]
        for retry in (False, True):
            async with self._pool.acquire() as connection:
                try:
                    written = await connection.fetch(
                        RECORD_DELIVERIES, *columns, SUPERSEDED_REASON, NO_PAYMENT_FAILURE_REASON
                    )
                except asyncpg.InternalClientError as unusable:
                    # The server ended this connection while it sat idle in the pool (a restart, an idle
                    # timeout) and its "terminating connection" was read before its close, so asyncpg refused
                    # to start the statement. Without a reset query on release the pool would hand it out
                    # again: close it. Nothing was sent, so trying once more on another connection is safe.
                    connection.terminate()
                    if retry:
                        raise asyncpg.ConnectionDoesNotExistError(f"no usable connection: {unusable}") from None
                    continue
                if self._planning_each:
                    await self._replace_planning_connections(connection)
                break
        outcomes = {(record["source"], record["external_id"]): record["outcome"] for record in written}
        return [outcomes.get((row.source, row.external_id), "duplicate") for row in rows]


def asyncpg_dsn(database_url: str) -> str:
    """``postgresql+asyncpg://...`` as asyncpg takes it."""
    scheme, _, rest = database_url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgresql") else database_url
