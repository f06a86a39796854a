"""Endings: saved, stayed unprompted, lost or moved on; each cancels what is pending and publishes ``case.closed``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import messages, notifications, repository
from services.outreach.clock import Clock
from services.outreach.history import publish, record
from services.outreach.models import Case
from services.outreach.policy import Policy
from services.outreach.recipients import staff, tell
from services.outreach.saves import start_verification
from services.outreach.steps import cancel_open_work
from shared.events import CaseClosed, ConfirmedRootCause, Money, Outcome, correlation_id_from


class CaseAlreadyClosed(Exception):
    """The case has an ending already."""


class OutcomeContradicted(ValueError):
    """The outcome asked for contradicts the case's record; ``field`` names the request field at fault."""

    def __init__(self, message: str, *, field: str = "outcome") -> None:
        super().__init__(message)
        self.field = field


async def stayed_outcome(session: AsyncSession, case: Case, *, before: datetime) -> Outcome:
    """``saved`` when someone from Brink reached the customer (a contact recorded, or an offer applied) before they
    stayed, else ``stayed_unprompted``."""
    reached = await repository.reached_the_customer_before(
        session, case.id, before=before
    ) or await repository.offer_applied_before(session, case.id, before=before)
    return "saved" if reached else "stayed_unprompted"


async def close_by_hand(
    session: AsyncSession,
    case: Case,
    *,
    outcome: Outcome,
    reason: str,
    confirmed_root_cause: ConfirmedRootCause,
    clock: Clock,
    policy: Policy,
    actor: str | None,
) -> None:
    """A person's ending, with what they found the root cause to be; saved needs a contact on record."""
    if case.status != "open":
        raise CaseAlreadyClosed(f"case {case.id} is already closed as {case.status}")
    if outcome in ("saved", "stayed_unprompted"):
        honest = await stayed_outcome(session, case, before=clock.now())
        if outcome != honest:
            raise OutcomeContradicted(
                "saved needs a customer-facing task completed with a contact result (reached, declined, "
                "accepted_offer) or an offer applied: complete it first, or record stayed_unprompted"
                if outcome == "saved"
                else "a task reached the customer, so the customer stayed after Brink's work: record saved"
            )
    await close_case(
        session,
        case,
        outcome=outcome,
        reason=reason,
        clock=clock,
        policy=policy,
        actor=actor,
        confirmed_root_cause=confirmed_root_cause,
    )


async def close_case(
    session: AsyncSession,
    case: Case,
    *,
    outcome: Outcome,
    reason: str,
    clock: Clock,
    policy: Policy,
    actor: str | None = None,
    correlation_id: str | None = None,
    confirmed_root_cause: ConfirmedRootCause | None = None,
    invoice_paid: str | None = None,
) -> None:
    """Close an open case, cancel its pending steps and timers, publish ``case.closed`` with the revenue.

    A save starts ``pending`` until verified, except when an invoice is paid already (a recovered payment, or the
    next invoice received before the withdrawal): ``invoice_paid`` says which, and the save is verified.
    """
    if case.status != "open":
        raise CaseAlreadyClosed(f"case {case.id} is already closed as {case.status}")
    now = clock.now()
    cancelled = await cancel_open_work(session, case, now=now, reason=f"case closed: {outcome}")
    await repository.cancel_case_timers(session, case.id, now=now, outcome=f"case closed: {outcome}")
    case.status, case.closed_at, case.closed_reason, case.updated_at = outcome, now, reason, now
    case.confirmed_root_cause = confirmed_root_cause
    record(
        session,
        case,
        "closed",
        at=now,
        actor=actor,
        outcome=outcome,
        reason=reason,
        tasks_cancelled=cancelled,
        confirmed_root_cause=confirmed_root_cause,
        diagnosed_root_cause=case.root_cause,
    )
    if outcome == "saved":
        start_verification(session, case, now=now, policy=policy, invoice_paid=invoice_paid)
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
            confirmed_root_cause=confirmed_root_cause,
            symptom=case.symptom,
            playbook=case.playbook,
            save_status=case.save_status,
            previous_case_id=case.previous_case_id,
            revenue_saved=money if outcome == "saved" else None,
            revenue_lost=money if outcome in ("lost", "moved_on") else None,
            closed_at=now,
            reason=reason,
        ),
        correlation_id=correlation_id or correlation_id_from(case.cancellation_id),
    )
    notifications.enqueue(
        session,
        case=case,
        kind="case.closed",
        policy=policy,
        clock=clock,
        outcome=outcome,
        reason=reason,
        confirmed_root_cause=confirmed_root_cause,
    )
    await tell(
        session,
        person=(await staff(session, {case.owner})).get((case.owner or "").lower()),
        kind=messages.CLOSED,
        key=f"closed|{case.id}",
        policy=policy,
        clock=clock,
        case=case,
        outcome=outcome,
        reason=reason,
    )
    await session.flush()
