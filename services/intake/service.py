"""Intake's use cases: record a delivery once, keep each subscription's newest state, stage the event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import SubscriptionState, WebhookEvent, outbox
from shared.db import insert_if_new, rows_matched, utcnow
from shared.events import CancellationReceived, Envelope, Payload
from shared.outbox import add_to_outbox

Outcome = Literal["accepted", "duplicate", "ignored", "superseded"]
SUPERSEDED_REASON = "a newer event for this subscription was already received"


@dataclass(frozen=True)
class Delivery:
    source: str
    external_id: str
    event_type: str
    payload: dict[str, Any]
    correlation_id: str
    # The body exactly as received, when the database can store it as is: one JSON encoding less per webhook.
    payload_json: str | None = None


def state_after(event: Payload) -> str:
    """The subscription state an event leaves behind."""
    if isinstance(event, CancellationReceived):
        if event.billing_reason == "payment_failed" and not event.scheduled:
            return "payment_failed"
        return "scheduled" if event.scheduled else "cancelled"
    return "active"


async def claim_newest_state(
    session: AsyncSession, *, source: str, subscription_id: str, state: str, version: int
) -> bool:
    """Record ``state`` at ``version`` unless a newer one is known; False means the event is superseded."""
    table = SubscriptionState.__table__
    inserted = await insert_if_new(
        session,
        table,
        returning=table.c.id,
        source=source,
        subscription_id=subscription_id,
        state=state,
        state_version=version,
        updated_at=utcnow(),
    )
    if inserted is not None:
        return True
    # One conditional UPDATE: on PostgreSQL a concurrent writer's row lock makes this re-check the version.
    result = await session.execute(
        update(table)
        .where(table.c.source == source, table.c.subscription_id == subscription_id, table.c.state_version <= version)
        .values(state=state, state_version=version, updated_at=utcnow())
    )
    return rows_matched(result) > 0


async def record_delivery(
    session: AsyncSession, *, delivery: Delivery, event: Payload | None, ignored_reason: str | None = None
) -> Outcome:
    """Store the delivery and its event in the caller's transaction; a repeat or a late older event changes nothing."""
    row_id = await insert_if_new(
        session,
        WebhookEvent.__table__,
        returning=WebhookEvent.__table__.c.id,
        source=delivery.source,
        external_id=delivery.external_id,
        event_type=delivery.event_type,
        outcome="accepted" if event is not None else "ignored",
        outcome_reason=ignored_reason,
        published_type=event.TYPE if event is not None else None,
        correlation_id=delivery.correlation_id,
        payload=delivery.payload,
        received_at=utcnow(),
    )
    if row_id is None:
        return "duplicate"
    if event is None:
        return "ignored"
    subscription_id = getattr(event, "subscription_id", None)
    if subscription_id and not await claim_newest_state(
        session,
        source=delivery.source,
        subscription_id=subscription_id,
        state=state_after(event),
        version=event.state_version,  # type: ignore[attr-defined]
    ):
        await session.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id == row_id)
            .values(outcome="superseded", outcome_reason=SUPERSEDED_REASON)
        )
        return "superseded"
    await add_to_outbox_for(session, delivery=delivery, event=event)
    return "accepted"


async def add_to_outbox_for(session: AsyncSession, *, delivery: Delivery, event: Payload) -> None:
    """Stage the Brink event for a delivery in the caller's transaction."""
    envelope = Envelope.wrap(event, correlation_id=delivery.correlation_id, source=f"intake.{delivery.source}")
    await add_to_outbox(session, outbox, envelope)


async def find_delivery(session: AsyncSession, *, source: str, external_id: str) -> WebhookEvent | None:
    """A delivery already recorded under this key, if any."""
    return await session.scalar(
        select(WebhookEvent).where(WebhookEvent.source == source, WebhookEvent.external_id == external_id)
    )
