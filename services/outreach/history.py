"""The case's timeline and the events and notifications that leave with each change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import Case, CaseEvent, outbox
from shared.events import Envelope, Payload
from shared.outbox import add_to_outbox

SOURCE = "outreach"


def record(
    session: AsyncSession, case: Case, kind: str, *, at: Any, actor: str | None = None, **detail: Any
) -> CaseEvent:
    """Append one entry to the case's history (flushed with the caller's transaction)."""
    event = CaseEvent(case_id=case.id, at=at, kind=kind, actor=actor, detail=detail)
    session.add(event)
    return event


async def publish(session: AsyncSession, payload: Payload, *, correlation_id: str) -> None:
    """Stage an event in the outbox; it leaves only if the caller's transaction commits."""
    await add_to_outbox(session, outbox, Envelope.wrap(payload, correlation_id=correlation_id, source=SOURCE))
