"""A customer stays: the open case ends as saved or stayed unprompted, in billing order, ties left to a person."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.attempts import TIE_NOTE, WithdrawalEffect, place_withdrawal
from services.outreach.clock import Clock
from services.outreach.endings import close_case, stayed_outcome
from services.outreach.history import record
from services.outreach.models import Case, Subscription
from services.outreach.offer_confirmations import confirm_by_withdrawal
from services.outreach.policy import Policy
from services.outreach.saves import invoice_paid_after
from shared.events import CancellationWithdrawn
from shared.logs import get_logger

log = get_logger("outreach.withdrawals")
PAYMENT_RECOVERED = "payment_recovered"


async def withdraw(
    session: AsyncSession,
    withdrawal: CancellationWithdrawn,
    *,
    clock: Clock,
    policy: Policy,
    correlation_id: str,
    withdrawn_at: datetime | None = None,
) -> Case | None:
    """Apply a withdrawal by its billing version; returns the case it concerned, if any.

    ``withdrawn_at`` is when the billing system reported it: a task completed after that did not make the save.
    """
    now = clock.now()
    known = await repository.locked_subscription(session, withdrawal.cancellation_id)
    case = await repository.locked_open_case(session, withdrawal.cancellation_id)
    effect = place_withdrawal(
        withdrawal.state_version,
        staying_version=known.staying_version if known else None,
        open_case_version=case.state_version if case else None,
    )
    detail: dict[str, Any] = {
        "reason": withdrawal.reason,
        "version": withdrawal.state_version,
        "source_event_id": withdrawal.source_event_id,
    }
    if effect is WithdrawalEffect.ALREADY_KNOWN:
        log.info("outreach.withdrawal.already_known", cancellation_id=withdrawal.cancellation_id, **detail)
        return case
    if effect is WithdrawalEffect.OVERTAKEN:
        assert case is not None
        # The customer cancelled again after this withdrawal (the newer cancellation is applied already).
        record(session, case, "withdrawal_overtaken", at=now, case_version=case.state_version, **detail)
        return case
    await _remember(session, known, withdrawal, now=now)
    await confirm_by_withdrawal(
        session, withdrawal.cancellation_id, now=now, source_event_id=withdrawal.source_event_id
    )
    if effect is WithdrawalEffect.TIE:
        assert case is not None
        record(
            session,
            case,
            "same_version_tie",
            at=now,
            note=TIE_NOTE,
            **detail,
        )
        case.updated_at = now
        return case
    if effect is WithdrawalEffect.NO_OPEN_CASE:
        latest = await repository.latest_case(session, withdrawal.cancellation_id)
        if latest is not None:
            record(session, latest, "withdrawal_after_close", at=now, status=latest.status, **detail)
        return latest
    assert case is not None
    case.ended_version = withdrawal.state_version
    outcome = await stayed_outcome(session, case, before=withdrawn_at or now)
    await close_case(
        session,
        case,
        outcome=outcome,
        reason=f"cancellation withdrawn: {withdrawal.reason}",
        clock=clock,
        policy=policy,
        correlation_id=correlation_id,
        invoice_paid=await _invoice_paid(session, withdrawal) if outcome == "saved" else None,
    )
    return case


async def _invoice_paid(session: AsyncSession, withdrawal: CancellationWithdrawn) -> str | None:
    """Why the save this withdrawal makes is verified at once, if it is: a recovered payment paid the failed
    invoice, or the next invoice was paid and reached outreach first."""
    if withdrawal.reason == PAYMENT_RECOVERED:
        return "the failed invoice was paid"
    return await invoice_paid_after(session, withdrawal.cancellation_id, version=withdrawal.state_version)


async def _remember(
    session: AsyncSession, known: Subscription | None, withdrawal: CancellationWithdrawn, *, now: datetime
) -> None:
    """The subscription's newest withdrawal (and the one before it), which later diagnoses are placed by."""
    if known is None:
        session.add(
            Subscription(
                cancellation_id=withdrawal.cancellation_id,
                account_id=withdrawal.account_id,
                staying_version=withdrawal.state_version,
                previous_staying_version=0,
                staying_reason=withdrawal.reason[:64],
                staying_at=now,
            )
        )
        await session.flush()  # a second withdrawal in this transaction finds it
        return
    known.previous_staying_version = known.staying_version
    known.staying_version = withdrawal.state_version
    known.staying_reason, known.staying_at = withdrawal.reason[:64], now
