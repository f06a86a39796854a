"""Intake's use cases: record a delivery once, and stage the event it means in the outbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import WebhookEvent, outbox
from shared.db import insert_if_new, utcnow
from shared.events import Envelope, Payload
from shared.outbox import add_to_outbox

Outcome = Literal["accepted", "duplicate", "ignored"]


@dataclass(frozen=True)
class Delivery:
    source: str
    external_id: str
    event_type: str
    payload: dict[str, Any]
    correlation_id: str


async def record_delivery(session: AsyncSession, *, delivery: Delivery, event: Payload | None,
                          ignored_reason: str | None = None) -> Outcome:
    """Store the delivery and its event in the caller's transaction; a repeat changes nothing."""
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
    await add_to_outbox(
        session, outbox, Envelope.wrap(event, correlation_id=delivery.correlation_id, source=f"intake.{delivery.source}")
    )
    return "accepted"
