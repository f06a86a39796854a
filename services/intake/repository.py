"""Intake's SQL through SQLAlchemy: the portable delivery store, delivery look-ups, the reconciler's cursors and lease."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import case, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import ReconcileCursor, ReconcileLease, SubscriptionState, WebhookEvent, outbox
from services.intake.service import (
    INVOICE_PAID,
    NO_PAYMENT_FAILURE_REASON,
    PAYMENT_RECOVERED,
    SUPERSEDED_REASON,
    Outcome,
    PreparedDelivery,
)
from shared.db import insert_if_new, rows_matched, transaction, utcnow
from shared.events import InvoicePaid

INBOX = WebhookEvent.__table__
STATES = SubscriptionState.__table__


class PortableDeliveries:
    """Records each delivery in its own transaction on any database (SQLite's default, PostgreSQL in tests)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def record(self, row: PreparedDelivery) -> Outcome:
        async with transaction(self._sessions) as session:
            return await record_in(session, row)


async def record_in(session: AsyncSession, row: PreparedDelivery) -> Outcome:
    """The delivery, its subscription's newest state and its outbox row, in the caller's transaction."""
    if row.state == PAYMENT_RECOVERED:
        after = await _state_after_payment(session, row)
        if after is None:
            # An ordinary payment: stored as ignored, as cheaply as any ignored event after the state check.
            row = row._replace(ignored="ignored", reason=NO_PAYMENT_FAILURE_REASON, published_type=None, state=None)
        elif after == INVOICE_PAID:
            row = row._replace(published_type=InvoicePaid.TYPE, body=row.paid_body)
    row_id = await insert_if_new(
        session,
        INBOX,
        returning=INBOX.c.id,
        source=row.source,
        external_id=row.external_id,
        event_type=row.event_type,
        outcome=row.ignored or "accepted",
        outcome_reason=row.reason,
        published_type=row.published_type,
        correlation_id=row.correlation_id,
        payload=json.loads(row.payload),
        received_at=row.received_at,
        received_via=row.received_via,
    )
    if row_id is None:
        return "duplicate"
    if row.ignored:
        return "ignored"
    if (
        row.state != PAYMENT_RECOVERED
        and row.subscription_id is not None
        and not await claim_newest_state(session, row)
    ):
        await session.execute(
            update(INBOX).where(INBOX.c.id == row_id).values(outcome="superseded", outcome_reason=SUPERSEDED_REASON)
        )
        return "superseded"
    assert row.envelope_id is not None and row.body is not None and row.published_type is not None
    await session.execute(
        outbox.insert(),
        {
            "event_id": row.envelope_id,
            "event_type": row.published_type,
            "correlation_id": row.correlation_id,
            "body": row.body,
            "created_at": row.received_at,
        },
    )
    return "accepted"


async def claim_newest_state(session: AsyncSession, row: PreparedDelivery) -> bool:
    """Record the row's subscription state unless a newer one is known; False means the event is superseded."""
    inserted = await insert_if_new(
        session,
        STATES,
        returning=STATES.c.id,
        source=row.source,
        subscription_id=row.subscription_id,
        state=row.state,
        state_version=row.state_version,
        updated_at=row.received_at,
    )
    if inserted is not None:
        return True
    # One conditional UPDATE: on PostgreSQL a concurrent writer's row lock makes this re-check the version.
    result = await session.execute(
        update(STATES)
        .where(
            STATES.c.source == row.source,
            STATES.c.subscription_id == row.subscription_id,
            STATES.c.state_version <= row.state_version,
        )
        .values(state=row.state, state_version=row.state_version, updated_at=row.received_at)
    )
    return rows_matched(result) > 0


async def _state_after_payment(session: AsyncSession, row: PreparedDelivery) -> str | None:
    """The subscription's state after a payment no older than it: active again over a payment failure,
    ``invoice_paid`` over a withdrawn cancellation (keeping the withdrawal's version); None for any other."""
    over_failure = (STATES.c.state == "payment_failed") & (STATES.c.state_version <= row.state_version)
    over_withdrawal = (STATES.c.state == "active") & (STATES.c.state_version < row.state_version)
    result = await session.execute(
        update(STATES)
        .where(
            STATES.c.source == row.source,
            STATES.c.subscription_id == row.subscription_id,
            or_(over_failure, over_withdrawal),
        )
        .values(
            state=case((STATES.c.state == "payment_failed", "active"), else_=INVOICE_PAID),
            state_version=case((STATES.c.state == "payment_failed", row.state_version), else_=STATES.c.state_version),
            updated_at=row.received_at,
        )
        .returning(STATES.c.state)
    )
    after = result.scalar_one_or_none()
    return None if after is None else str(after)


async def find_delivery(session: AsyncSession, *, source: str, external_id: str) -> WebhookEvent | None:
    """A delivery already recorded under this key, if any."""
    return await session.scalar(
        select(WebhookEvent).where(WebhookEvent.source == source, WebhookEvent.external_id == external_id)
    )


async def reconcile_cursor(session: AsyncSession, source: str) -> ReconcileCursor | None:
    """Where the reconciler stopped reading a billing system's events, if it ever read them."""
    return await session.get(ReconcileCursor, source)


async def save_reconcile_cursor(
    session: AsyncSession, *, source: str, read_until: datetime, succeeded: bool = True
) -> None:
    """Move a source's cursor (never backwards) and note a successful run."""
    now = utcnow()
    cursor = await session.get(ReconcileCursor, source, with_for_update=True)
    if cursor is None:
        session.add(
            ReconcileCursor(
                source=source, read_until=read_until, last_success_at=now if succeeded else None, updated_at=now
            )
        )
        return
    cursor.read_until = max(cursor.read_until, read_until)
    cursor.updated_at = now
    if succeeded:
        cursor.last_success_at = now


async def reconcile_cursors(session: AsyncSession) -> list[ReconcileCursor]:
    """Every source's cursor."""
    return list((await session.scalars(select(ReconcileCursor))).all())


async def take_lease(session: AsyncSession, *, name: str, holder: str, now: datetime, until: datetime) -> bool:
    """Hold the lease ``name`` until ``until`` when it is free, expired or already ours; False when another holds it."""
    table = ReconcileLease.__table__
    if await insert_if_new(session, table, returning=table.c.name, name=name, holder=holder, expires_at=until):
        return True
    # One conditional UPDATE: two instances racing for an expired lease cannot both match it.
    result = await session.execute(
        update(table)
        .where(table.c.name == name, or_(table.c.holder == holder, table.c.expires_at < now))
        .values(holder=holder, expires_at=until)
    )
    return rows_matched(result) > 0


async def release_lease(session: AsyncSession, *, name: str, holder: str) -> None:
    """Give the lease up (at shutdown), so another instance takes over at its next turn rather than at expiry."""
    table = ReconcileLease.__table__
    await session.execute(delete(table).where(table.c.name == name, table.c.holder == holder))
