"""Verified saves: a save is pending until the customer is still there some time later or its next invoice is
paid, or reverted by a new cancellation inside that window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.history import record
from services.outreach.models import Case
from services.outreach.policy import Policy
from services.outreach.steps import add_timer
from shared.events import InvoicePaid
from shared.logs import get_logger

log = get_logger("outreach.saves")


def start_verification(
    session: AsyncSession, case: Case, *, now: datetime, policy: Policy, invoice_paid: str | None
) -> None:
    """A new save: verified at once when an invoice is paid already (``invoice_paid`` says which), else pending
    with a timer."""
    case.save_verify_by = now + policy.save_verify
    if invoice_paid:
        _settle(session, case, "verified", now=now, why=invoice_paid)
        return
    case.save_status = "pending"
    add_timer(session, case=case, task=None, kind="verify", due_at=case.save_verify_by, now=now)


async def verify_when_due(session: AsyncSession, case: Case, *, now: datetime) -> str:
    """The verification timer fired: a save still pending is verified (the customer stayed the whole window)."""
    if case.save_status != "pending":
        return f"save {case.save_status}"
    _settle(session, case, "verified", now=now, why=f"still active {_days(case, now)} days after the save")
    return "verified"


async def verify_by_invoice(session: AsyncSession, paid: InvoicePaid, *, now: datetime) -> Case | None:
    """The subscription's next invoice, paid after the withdrawal that made its pending save, verifies it early.

    An invoice paid before the withdrawal (delivered late), or a save already settled, changes nothing. Every
    paid invoice is kept as the subscription's newest (if it is): a withdrawal that reaches outreach after it
    finds it (``invoice_paid_after``).
    """
    case = await repository.latest_case(session, paid.cancellation_id)
    await repository.remember_paid_invoice(
        session, paid.cancellation_id, version=paid.state_version, source_event_id=paid.source_event_id, now=now
    )
    if (
        case is None
        or case.save_status != "pending"
        or case.ended_version is None
        or paid.state_version <= case.ended_version
    ):
        log.info(
            "outreach.invoice_paid.ignored",
            cancellation_id=paid.cancellation_id,
            source_event_id=paid.source_event_id,
            version=paid.state_version,
            save_status=case.save_status if case else None,
        )
        return case
    _settle(session, case, "verified", now=now, why=f"the next invoice was paid ({paid.source_event_id})")
    await repository.cancel_case_timers_of_kind(session, case.id, "verify", now=now, outcome="save verified")
    return case


async def invoice_paid_after(session: AsyncSession, cancellation_id: str, *, version: int) -> str | None:
    """Why a save made by the withdrawal at billing ``version`` is verified at once: an invoice paid after that
    version reached outreach before the withdrawal did. None when there is none (or the withdrawal has no version:
    an invoice cannot be placed after it)."""
    if not version:
        return None
    paid = await repository.newest_paid_invoice(session, cancellation_id)
    if paid is None or paid.paid_version <= version:
        return None
    return f"the next invoice was paid ({paid.source_event_id}), received before the withdrawal"


async def cancelled_again(session: AsyncSession, earlier: Case, *, new_case: Case, now: datetime) -> None:
    """A new attempt to leave: the earlier case's pending save is reverted inside its window, verified after it."""
    days = (now - earlier.closed_at).days if earlier.closed_at else None
    record(
        session,
        earlier,
        "cancelled_again",
        at=now,
        new_case_id=new_case.id,
        days_after_close=days,
        outcome=earlier.status,
    )
    record(
        session,
        new_case,
        "cancelled_again",
        at=now,
        previous_case_id=earlier.id,
        previous_outcome=earlier.status,
        previous_save_status=earlier.save_status,
        days_after_close=days,
    )
    if earlier.save_status != "pending":
        return
    if earlier.save_verify_by is not None and now >= earlier.save_verify_by:
        _settle(session, earlier, "verified", now=now, why="still active for the whole window")
    else:
        _settle(session, earlier, "reverted", now=now, why=f"cancelled again {days} days after being saved")
    await repository.cancel_case_timers(session, earlier.id, now=now, outcome=f"save {earlier.save_status}")


def _settle(session: AsyncSession, case: Case, status: str, *, now: datetime, why: str) -> None:
    case.save_status, case.save_settled_at, case.updated_at = status, now, now
    record(session, case, f"save_{status}", at=now, reason=why)


def _days(case: Case, now: datetime) -> int:
    return (now - case.closed_at).days if case.closed_at else 0
