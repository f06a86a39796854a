"""Diagnosis's message handlers: plain async functions, wired to queues at start-up."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import service
from shared.events import CancellationReceived, Envelope


async def on_cancellation_received(payload: CancellationReceived, *, envelope: Envelope, session: AsyncSession) -> None:
    cancellation = await service.record_cancellation(session, payload)
    await service.diagnose(session, cancellation, correlation_id=envelope.correlation_id)
