"""Outreach's message handlers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from structlog.contextvars import bound_contextvars

from services.outreach.cases import facts_read_together, open_or_update_case
from services.outreach.clock import Clock
from services.outreach.policy import Policy
from services.outreach.saves import verify_by_invoice
from services.outreach.withdrawals import withdraw
from shared.events import CancellationWithdrawn, DiagnosisCompleted, Envelope, InvoicePaid


async def on_diagnoses_completed(
    payloads: list[DiagnosisCompleted],
    *,
    envelopes: list[Envelope],
    session: AsyncSession,
    policy: Policy,
    clock: Clock,
) -> None:
    """Diagnoses that arrived together (``shared.consumer.Batched``): where each belongs is read in one statement,
    then each opens or updates its case in arrival order."""
    known = await facts_read_together(session, payloads, policy=policy, clock=clock)
    for payload, envelope in zip(payloads, envelopes, strict=True):
        with bound_contextvars(correlation_id=envelope.correlation_id, event_id=str(envelope.id)):
            await open_or_update_case(
                session,
                payload,
                policy=policy,
                clock=clock,
                correlation_id=envelope.correlation_id,
                facts=known.get(payload.cancellation_id),
            )


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
