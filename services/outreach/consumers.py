"""Outreach's message handlers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.cases import open_or_update_case
from services.outreach.clock import Clock
from services.outreach.policy import Policy
from services.outreach.saves import verify_by_invoice
from services.outreach.withdrawals import withdraw
from shared.events import CancellationWithdrawn, DiagnosisCompleted, Envelope, InvoicePaid


async def on_diagnosis_completed(
    payload: DiagnosisCompleted, *, envelope: Envelope, session: AsyncSession, policy: Policy, clock: Clock
) -> None:
    """Open the case, or update it with a newer diagnosis version."""
    await open_or_update_case(session, payload, policy=policy, clock=clock, correlation_id=envelope.correlation_id)


async def on_cancellation_withdrawn(
    payload: CancellationWithdrawn, *, envelope: Envelope, session: AsyncSession, policy: Policy, clock: Clock
) -> None:
    """The customer stays: close the case as saved or stayed unprompted (or remember it for a later diagnosis)."""
    await withdraw(
        session,
        payload,
        clock=clock,
        policy=policy,
        correlation_id=envelope.correlation_id,
        withdrawn_at=envelope.occurred_at,
    )


async def on_invoice_paid(payload: InvoicePaid, *, envelope: Envelope, session: AsyncSession, clock: Clock) -> None:
    """The next invoice paid after a withdrawal: verify the save it made, early."""
    await verify_by_invoice(session, payload, now=clock.now())
