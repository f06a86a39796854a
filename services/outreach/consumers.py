"""Outreach's message handlers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.cases import open_or_update_case
from services.outreach.clock import Clock
from services.outreach.endings import withdraw
from services.outreach.policy import Policy
from shared.events import CancellationWithdrawn, DiagnosisCompleted, Envelope


async def on_diagnosis_completed(
    payload: DiagnosisCompleted, *, envelope: Envelope, session: AsyncSession, policy: Policy, clock: Clock
) -> None:
    """Open the case, or update it with a newer diagnosis version."""
    await open_or_update_case(session, payload, policy=policy, clock=clock, correlation_id=envelope.correlation_id)


async def on_cancellation_withdrawn(
    payload: CancellationWithdrawn, *, envelope: Envelope, session: AsyncSession, policy: Policy, clock: Clock
) -> None:
    """The customer stays: close the case as saved (or remember it for a diagnosis still to come)."""
    await withdraw(session, payload, clock=clock, policy=policy, correlation_id=envelope.correlation_id)
