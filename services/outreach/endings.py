"""Endings: saved, lost or moved on; each cancels what is pending and publishes ``case.closed``."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import notifications, repository
from services.outreach.clock import Clock
from services.outreach.history import publish, record
from services.outreach.models import Case
from services.outreach.policy import Policy
from services.outreach.steps import cancel_open_work
from shared.events import CancellationWithdrawn, CaseClosed, Money


class CaseAlreadyClosed(Exception):
    """The case has an ending already."""


async def close_case(
    session: AsyncSession,
    case: Case,
    *,
    outcome: str,
    reason: str,
    clock: Clock,
    policy: Policy,
    actor: str | None = None,
    correlation_id: str | None = None,
) -> None:
    """Close an open case, cancel its pending steps and timers, publish ``case.closed`` with the revenue."""
    if case.status != "open":
        raise CaseAlreadyClosed(f"case {case.id} is already closed as {case.status}")
    now = clock.now()
    cancelled = await cancel_open_work(session, case, now=now, reason=f"case closed: {outcome}")
    await repository.cancel_case_timers(session, case.id, now=now, outcome=f"case closed: {outcome}")
    case.status, case.closed_at, case.closed_reason, case.updated_at = outcome, now, reason, now
    record(session, case, "closed", at=now, actor=actor, outcome=outcome, reason=reason, tasks_cancelled=cancelled)
    money = (
        Money(amount_minor=case.mrr_minor, currency=case.currency)
        if case.mrr_minor is not None and case.currency
        else None
    )
    await publish(
        session,
        CaseClosed(
            case_id=case.id,
            cancellation_id=case.cancellation_id,
            account_id=case.account_id,
            outcome=outcome,
            root_cause=case.root_cause,
            revenue_saved=money if outcome == "saved" else None,
            revenue_lost=money if outcome != "saved" else None,
            closed_at=now,
            reason=reason,
        ),
        correlation_id=correlation_id or case.cancellation_id,
    )
    notifications.enqueue(
        session, case=case, kind="case.closed", policy=policy, clock=clock, outcome=outcome, reason=reason
    )
    await session.flush()


async def withdraw(
    session: AsyncSession, withdrawal: CancellationWithdrawn, *, clock: Clock, policy: Policy, correlation_id: str
) -> Case | None:
    """The customer stays: close the open case as saved, or remember it for a diagnosis still on its way."""
    case = await repository.locked_case_of_cancellation(session, withdrawal.cancellation_id)
    if case is None:
        await repository.remember_early_withdrawal(
            session,
            cancellation_id=withdrawal.cancellation_id,
            account_id=withdrawal.account_id,
            reason=withdrawal.reason,
            received_at=clock.now(),
        )
        return None
    if case.status == "open":
        await close_case(
            session,
            case,
            outcome="saved",
            reason=f"cancellation withdrawn: {withdrawal.reason}",
            clock=clock,
            policy=policy,
            correlation_id=correlation_id,
        )
    else:
        record(session, case, "withdrawal_after_close", at=clock.now(), reason=withdrawal.reason, status=case.status)
    return case
