"""Diagnosis's use cases: record a cancellation, diagnose it, publish the result."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import classifier
from services.diagnosis.models import Cancellation, Diagnosis, outbox
from shared.db import utcnow
from shared.events import (
    CancellationReceived,
    DiagnosisCompleted,
    Envelope,
    Evidence,
    Hypothesis,
    Verdict,
)
from shared.outbox import add_to_outbox


async def record_cancellation(session: AsyncSession, event: CancellationReceived) -> Cancellation:
    """Keep the newest report of a cancellation (by the source's own ordering)."""
    existing = (
        await session.execute(select(Cancellation).where(Cancellation.cancellation_id == event.cancellation_id))
    ).scalar_one_or_none()
    if existing is None:
        existing = Cancellation(
            cancellation_id=event.cancellation_id, account_id=event.account_id, status="open",
            state_version=event.state_version, details=event.model_dump(mode="json"), received_at=utcnow(),
        )
        session.add(existing)
    elif event.state_version >= existing.state_version:
        existing.details = event.model_dump(mode="json")
        existing.state_version = event.state_version
        existing.status = "open"
    await session.flush()
    return existing


async def diagnose(session: AsyncSession, cancellation: Cancellation, *, correlation_id: str) -> DiagnosisCompleted:
    """Write the next diagnosis version and stage ``diagnosis.completed`` in the outbox."""
    event = CancellationReceived.model_validate(cancellation.details)
    result = classifier.classify(feedback=event.feedback, billing_reason=event.billing_reason,
                                 involuntary=event.involuntary)
    latest = (
        await session.execute(
            select(func.max(Diagnosis.version)).where(Diagnosis.cancellation_id == cancellation.cancellation_id)
        )
    ).scalar_one_or_none()
    version = (latest or 0) + 1
    completed = DiagnosisCompleted(
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
        symptom=result.symptom,
        root_cause=result.root_cause,
        hypotheses=[
            Hypothesis(
                root_cause=result.root_cause,
                confidence=result.confidence,
                evidence=[Evidence(signal=s, detail=d, weight=w) for s, d, w in result.evidence],
            )
        ],
        verdict=Verdict(decision=result.decision, reason=result.reason, priority=50),
        recommended_playbook=result.root_cause if result.decision == "pursue" else result.decision,
    )
    session.add(Diagnosis(
        id=completed.diagnosis_id, cancellation_id=completed.cancellation_id, account_id=completed.account_id,
        version=version, symptom=completed.symptom, root_cause=completed.root_cause,
        decision=completed.verdict.decision, explanation=completed.model_dump(mode="json"), created_at=utcnow(),
    ))
    await add_to_outbox(session, outbox, Envelope.wrap(completed, correlation_id=correlation_id, source="diagnosis"))
    return completed


async def latest_diagnosis(session: AsyncSession, account_id: str) -> Diagnosis | None:
    return (
        await session.execute(
            select(Diagnosis).where(Diagnosis.account_id == account_id)
            .order_by(Diagnosis.created_at.desc(), Diagnosis.version.desc()).limit(1)
        )
    ).scalar_one_or_none()
