"""Diagnosis's use cases: record what happened, diagnose, publish. Never commits: the edge does."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import repository
from services.diagnosis.classifier import StatedReason
from services.diagnosis.context import ContextSource, ContextUnavailable
from services.diagnosis.engine import CaseFacts, Finding, diagnose_case
from services.diagnosis.models import Attempt, Cancellation, Diagnosis, outbox
from services.diagnosis.verdict import Attempt as PastAttempt
from shared.db import utcnow
from shared.events import (
    CancellationReceived,
    CancellationWithdrawn,
    DiagnosisCompleted,
    Envelope,
    Evidence,
    Hypothesis,
    Unknown,
    Verdict,
)
from shared.logs import get_logger
from shared.outbox import add_to_outbox

log = get_logger("diagnosis.service")
latest_diagnosis = repository.latest_diagnosis


async def record_cancellation(session: AsyncSession, event: CancellationReceived) -> Cancellation:
    """Keep the newest report of a cancellation (by the source's own ordering)."""
    existing, created = await repository.claim_cancellation(
        session, cancellation_id=event.cancellation_id, account_id=event.account_id, status="open",
        state_version=event.state_version, details=event.model_dump(mode="json"),
    )
    if not created and event.state_version >= existing.state_version:
        existing.details = event.model_dump(mode="json")
        existing.state_version = event.state_version
        existing.status = "open"
    await session.flush()
    return existing


async def withdraw_cancellation(session: AsyncSession, event: CancellationWithdrawn) -> None:
    """The customer stays: no more diagnoses, unless a newer cancellation of the same subscription arrives."""
    # When the withdrawal overtook the cancellation, the row remembers it so the late, older one stays closed.
    existing, created = await repository.claim_cancellation(
        session, cancellation_id=event.cancellation_id, account_id=event.account_id, status="withdrawn",
        state_version=event.state_version, details={},
    )
    if not created and event.state_version >= existing.state_version:
        existing.status = "withdrawn"
        existing.state_version = event.state_version
    await session.flush()


async def record_attempt(session: AsyncSession, *, attempt_id: str, account_id: str, cancellation_id: str,
                         action: str, result: str, performed_at: Any, note: str | None = None,
                         playbook: str | None = None, whole_playbook: bool = False) -> None:
    """Add an attempt to the account's history."""
    session.add(Attempt(attempt_id=attempt_id, account_id=account_id, cancellation_id=cancellation_id,
                        action=action[:200], result=result[:64], note=note, playbook=playbook,
                        whole_playbook=whole_playbook, performed_at=performed_at))
    await session.flush()


async def close_cancellation(session: AsyncSession, cancellation_id: str) -> None:
    """The case ended (saved, lost or moved on): no more re-diagnosis."""
    existing = await repository.cancellation_by_id(session, cancellation_id)
    if existing is not None and existing.status == "open":
        existing.status = "closed"
        await session.flush()


async def rediagnose_account(session: AsyncSession, account_id: str, *, correlation_id: str,
                             context: ContextSource | None = None,
                             unless_seen: int | None = None) -> list[DiagnosisCompleted]:
    """A new diagnosis version for each open cancellation of the account (skipping ones that saw ``unless_seen``)."""
    done = []
    for cancellation in await repository.open_cancellations(session, account_id):
        if unless_seen is not None and await repository.seen_signal_version(session, cancellation) >= unless_seen:
            log.info("diagnosis.rediagnosis.already_current", cancellation_id=cancellation.cancellation_id)
            continue
        done.append(await diagnose(session, cancellation, correlation_id=correlation_id, context=context))
    return done


async def _gather_signals(account_id: str, stored: dict[str, dict[str, Any]],
                          context: ContextSource | None) -> tuple[dict[str, dict[str, Any]], bool]:
    """Stored signals, filled in by the context source; incomplete when the source could not be read."""
    if context is None:
        return stored, False
    try:
        fetched = await context.fetch(account_id)
    except ContextUnavailable:
        return stored, True
    return {**fetched, **stored}, False


async def diagnose(session: AsyncSession, cancellation: Cancellation, *, correlation_id: str,
                   context: ContextSource | None = None) -> DiagnosisCompleted:
    """Write the next diagnosis version and stage ``diagnosis.completed`` in the outbox."""
    event = CancellationReceived.model_validate(cancellation.details)
    stored, signal_version = await repository.signals_of(session, event.account_id)
    signals, incomplete = await _gather_signals(event.account_id, stored, context)
    history = await repository.attempts_of(session, event.account_id)
    finding = diagnose_case(CaseFacts(
        stated=StatedReason(source=event.source, billing_reason=event.billing_reason, feedback=event.feedback,
                            comment=event.comment, involuntary=event.involuntary),
        signals=signals,
        history=[PastAttempt(action=a.action, result=a.result, playbook=a.playbook, whole_playbook=a.whole_playbook)
                 for a in history],
        mrr_major=event.mrr.amount_minor / 100 if event.mrr else None,
        effective_at=event.effective_at,
    ))
    version = await repository.next_version(session, cancellation.cancellation_id)
    completed = _completed(event, finding, version=version, incomplete=incomplete, signal_version=signal_version)
    session.add(Diagnosis(
        id=completed.diagnosis_id, cancellation_id=completed.cancellation_id, account_id=completed.account_id,
        version=version, symptom=completed.symptom, root_cause=completed.root_cause,
        decision=completed.verdict.decision, explanation=completed.model_dump(mode="json"), created_at=utcnow(),
    ))
    await add_to_outbox(session, outbox, Envelope.wrap(completed, correlation_id=correlation_id, source="diagnosis"))
    log.info("diagnosis.completed", cancellation_id=completed.cancellation_id, version=version,
             root_cause=completed.root_cause, decision=completed.verdict.decision, incomplete=incomplete)
    return completed


def _completed(event: CancellationReceived, finding: Finding, *, version: int, incomplete: bool,
               signal_version: int) -> DiagnosisCompleted:
    return DiagnosisCompleted(
        diagnosis_id=str(uuid.uuid4()),
        diagnosis_version=version,
        cancellation_id=event.cancellation_id,
        account_id=event.account_id,
        customer_id=event.customer_id,
        customer_name=event.customer_name,
        account_owner=event.account_owner,
        source=event.source,
        mrr=event.mrr,
        effective_at=event.effective_at,
        billing_reason=event.billing_reason,
        stated_reason=event.feedback,
        comment=event.comment,
        symptom=finding.symptom,
        root_cause=finding.root_cause,
        hypotheses=[
            Hypothesis(root_cause=h.root_cause, confidence=h.confidence,
                       evidence=[Evidence(signal=c.signal, detail=c.detail, weight=c.weight) for c in h.evidence])
            for h in finding.hypotheses
        ],
        unknowns=[Unknown(root_cause=u.root_cause, signals_to_check=u.signals_to_check, questions=u.questions)
                  for u in finding.unknowns],
        tried=finding.tried,
        avoid=finding.avoid,
        verdict=Verdict(decision=finding.decision, reason=finding.reason, priority=finding.priority),
        recommended_playbook=finding.recommended_playbook,
        incomplete=incomplete,
        signal_version=signal_version,
    )
