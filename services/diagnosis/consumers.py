"""Diagnosis's message handlers: plain async functions, wired to queues at start-up."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import service
from services.diagnosis.context import ContextSource
from services.diagnosis.outcomes import SaveRates, record_confirmed_case
from services.diagnosis.rules import Rules
from shared.events import (
    AccountSignalsUpdated,
    CancellationReceived,
    CancellationWithdrawn,
    CaseClosed,
    Envelope,
    InterventionLogged,
)
from shared.logs import get_logger

log = get_logger("diagnosis.consumers")


async def on_cancellations_received(
    payloads: list[CancellationReceived],
    *,
    envelopes: list[Envelope],
    session: AsyncSession,
    rules: Rules,
    context: ContextSource | None = None,
    learning: SaveRates | None = None,
) -> None:
    """Cancellation reports that arrived together (``shared.consumer.Batched``), each kept and diagnosed."""
    await service.diagnose_cancellations(
        session, list(zip(payloads, envelopes, strict=True)), rules=rules, context=context, learning=learning
    )


async def on_cancellation_withdrawn(
    payload: CancellationWithdrawn, *, envelope: Envelope, session: AsyncSession
) -> None:
    await service.withdraw_cancellation(session, payload)


async def on_signals_updated(
    payload: AccountSignalsUpdated,
    *,
    envelope: Envelope,
    session: AsyncSession,
    rules: Rules,
    context: ContextSource | None = None,
    learning: SaveRates | None = None,
) -> None:
    """Diagnose again, unless a diagnosis has already seen these signals (several PUTs in a row)."""
    await service.rediagnose_account(
        session,
        payload.account_id,
        correlation_id=envelope.correlation_id,
        context=context,
        unless_seen=payload.signal_version,
        rules=rules,
        learning=learning,
    )


async def on_intervention_logged(
    payload: InterventionLogged,
    *,
    envelope: Envelope,
    session: AsyncSession,
    rules: Rules,
    context: ContextSource | None = None,
    learning: SaveRates | None = None,
) -> None:
    """Remember the attempt and its note; diagnose again when it failed or the rules read something in its note."""
    await service.record_attempt(
        session,
        attempt_id=f"intervention:{payload.intervention_id}",
        account_id=payload.account_id,
        cancellation_id=payload.cancellation_id,
        action=payload.move or payload.action,  # the shared vocabulary the rules and `avoid` speak
        result=payload.result,
        note=payload.note,
        performed_at=payload.performed_at,
        playbook=payload.playbook,
    )
    # A failed attempt changes the recommendation; a note may say what is really wrong. Either way, diagnose again.
    if payload.result.strip().lower() in rules.failed_results or rules.reads_anything_in(payload.note or ""):
        await service.rediagnose_account(
            session,
            payload.account_id,
            correlation_id=envelope.correlation_id,
            context=context,
            rules=rules,
            learning=learning,
        )


async def on_case_closed(payload: CaseClosed, *, envelope: Envelope, session: AsyncSession) -> None:
    """A case ended: its playbook counts as tried, its confirmed root cause is kept to learn from, and the
    cancellation is not diagnosed again."""
    await record_confirmed_case(session, payload)
    await service.record_attempt(
        session,
        attempt_id=f"case:{payload.case_id}",
        account_id=payload.account_id,
        cancellation_id=payload.cancellation_id,
        action=f"{payload.root_cause or 'case'} playbook",
        result=payload.outcome,
        note=payload.reason,
        performed_at=payload.closed_at,
        playbook=payload.playbook or payload.root_cause,
        # Saved, or stayed before anyone touched it: the playbook did not fail.
        whole_playbook=payload.outcome not in ("saved", "stayed_unprompted"),
    )
    await service.close_cancellation(session, payload.cancellation_id)
