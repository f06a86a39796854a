"""Diagnosis's use cases: record what happened, diagnose, publish. Never commits: the edge does."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import repository
from services.diagnosis.classifier import StatedReason
from services.diagnosis.context import ContextSource, ContextUnavailable
from services.diagnosis.engine import CaseFacts, Finding, diagnose_case
from services.diagnosis.outcomes import SaveRates
from services.diagnosis.rules import Rules
from shared.db import utcnow
from shared.events import (
    CancellationReceived,
    CancellationWithdrawn,
    DiagnosisCompleted,
    DiscoveryQuestion,
    Envelope,
    Evidence,
    Hypothesis,
    PlaybookChoice,
    SaveRate,
    Unknown,
    Verdict,
)
from shared.ids import new_id
from shared.logs import bound_contextvars, get_logger

log = get_logger("diagnosis.service")
latest_diagnosis = repository.latest_diagnosis


async def diagnose_cancellations(
    session: AsyncSession,
    reports: list[tuple[CancellationReceived, Envelope]],
    *,
    rules: Rules,
    context: ContextSource | None = None,
    learning: SaveRates | None = None,
) -> None:
    """Keep the newest report of each cancellation (by the source's own ordering) and diagnose it while it is
    open: as handling the reports one after another would, with one write and one read of the accounts'
    histories for a batch. A cancellation reported twice in the batch starts a second one, which sees the first."""
    part: list[tuple[CancellationReceived, Envelope]] = []
    in_part: set[str] = set()
    for report in reports:
        if report[0].cancellation_id in in_part:
            await _diagnose_reports(session, part, rules=rules, context=context, learning=learning)
            part, in_part = [], set()
        part.append(report)
        in_part.add(report[0].cancellation_id)
    await _diagnose_reports(session, part, rules=rules, context=context, learning=learning)


async def _diagnose_reports(
    session: AsyncSession,
    reports: list[tuple[CancellationReceived, Envelope]],
    *,
    rules: Rules,
    context: ContextSource | None,
    learning: SaveRates | None,
) -> None:
    """Reports of different cancellations: none changes what another one reads (the accounts' histories)."""
    claimed = await repository.add_cancellations_and_read_histories(session, [event for event, _ in reports])
    made = []
    for event, envelope in reports:
        with bound_contextvars(correlation_id=envelope.correlation_id, event_id=str(envelope.id)):
            is_new = event.cancellation_id in claimed.new
            newest = event if is_new else await _newest_report(session, event)
            if newest is None:
                log.info("diagnosis.cancellation.already_withdrawn", cancellation_id=event.cancellation_id)
                continue
            diagnosis = await _diagnosis(
                session,
                newest,
                correlation_id=envelope.correlation_id,
                rules=rules,
                context=context,
                latest_version=0 if is_new else None,
                history=claimed.history(event.account_id),
                learning=learning,
            )
            made.append(diagnosis)
            _log_completed(diagnosis)  # written with the others below, in this transaction
    await repository.add_diagnoses_and_events(session, made)


async def _newest_report(session: AsyncSession, event: CancellationReceived) -> CancellationReceived | None:
    """The newest report of a cancellation stored before, once ``event`` is applied unless it is older; None when
    the cancellation is no longer open."""
    if await repository.update_unless_newer_stored(
        session,
        cancellation_id=event.cancellation_id,
        state_version=event.state_version,
        status="open",
        details=event.model_dump(mode="json"),
    ):
        return event
    stored = await repository.locked_cancellation(session, event.cancellation_id)
    return CancellationReceived.model_validate(stored.details) if stored.status == "open" else None


async def withdraw_cancellation(session: AsyncSession, event: CancellationWithdrawn) -> None:
    """The customer stays: no more diagnoses, unless a newer cancellation of the same subscription arrives."""
    # When the withdrawal overtook the cancellation, the row remembers it so the late, older one stays closed.
    if not await repository.add_cancellation_if_new(
        session,
        cancellation_id=event.cancellation_id,
        account_id=event.account_id,
        status="withdrawn",
        state_version=event.state_version,
        details={},
    ):
        await repository.update_unless_newer_stored(
            session, cancellation_id=event.cancellation_id, state_version=event.state_version, status="withdrawn"
        )


async def record_attempt(
    session: AsyncSession,
    *,
    attempt_id: str,
    account_id: str,
    cancellation_id: str,
    action: str,
    result: str,
    performed_at: Any,
    note: str | None = None,
    playbook: str | None = None,
    whole_playbook: bool = False,
) -> None:
    """Add an attempt to the account's history."""
    await repository.add_attempt(
        session,
        attempt_id=attempt_id,
        account_id=account_id,
        cancellation_id=cancellation_id,
        action=action[:200],
        result=result[:64],
        note=note,
        playbook=playbook,
        whole_playbook=whole_playbook,
        performed_at=performed_at,
    )


async def close_cancellation(session: AsyncSession, cancellation_id: str) -> None:
    """The case ended (saved, lost or moved on): no more re-diagnosis."""
    await repository.close_if_open(session, cancellation_id)


async def rediagnose_account(
    session: AsyncSession,
    account_id: str,
    *,
    correlation_id: str,
    rules: Rules,
    context: ContextSource | None = None,
    unless_seen: int | None = None,
    learning: SaveRates | None = None,
) -> None:
    """A new diagnosis version for each open cancellation of the account (skipping ones that saw ``unless_seen``)."""
    history = None
    for cancellation in await repository.open_cancellations(session, account_id):
        if unless_seen is not None and cancellation.seen_signal_version >= unless_seen:
            log.info("diagnosis.rediagnosis.already_current", cancellation_id=cancellation.cancellation_id)
            continue
        # Diagnosing one cancellation changes nothing another one reads: the account's history is read once.
        if history is None:
            history = await repository.account_history(session, account_id)
        await diagnose(
            session,
            CancellationReceived.model_validate(cancellation.details),
            correlation_id=correlation_id,
            context=context,
            latest_version=cancellation.latest_version,
            history=history,
            rules=rules,
            learning=learning,
        )


async def _gather_signals(
    account_id: str, stored: dict[str, dict[str, Any]], context: ContextSource | None
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Stored signals, filled in by the context source; incomplete when the source could not be read."""
    if context is None:
        return stored, False
    try:
        fetched = await context.fetch(account_id)
    except ContextUnavailable:
        return stored, True
    return {**fetched, **stored}, False


async def diagnose(
    session: AsyncSession,
    event: CancellationReceived,
    *,
    correlation_id: str,
    rules: Rules,
    context: ContextSource | None = None,
    latest_version: int | None = None,
    history: repository.AccountHistory | None = None,
    learning: SaveRates | None = None,
) -> None:
    """Write the next diagnosis version and stage ``diagnosis.completed`` in the outbox.

    ``latest_version`` and ``history`` are read here unless the caller already knows them.
    """
    diagnosis = await _diagnosis(
        session,
        event,
        correlation_id=correlation_id,
        rules=rules,
        context=context,
        latest_version=latest_version,
        history=history,
        learning=learning,
    )
    await repository.add_diagnoses_and_events(session, [diagnosis])
    _log_completed(diagnosis)


async def _diagnosis(
    session: AsyncSession,
    event: CancellationReceived,
    *,
    correlation_id: str,
    rules: Rules,
    context: ContextSource | None,
    latest_version: int | None,
    history: repository.AccountHistory | None,
    learning: SaveRates | None,
) -> repository.NewDiagnosis:
    """The next diagnosis version of a cancellation and its event, to write."""
    if history is None:
        history = await repository.account_history(session, event.account_id)
    signals, incomplete = await _gather_signals(event.account_id, history.signals, context)
    finding = diagnose_case(
        CaseFacts(
            stated=StatedReason(
                source=event.source,
                billing_reason=event.billing_reason,
                feedback=event.feedback,
                comment=event.comment,
                involuntary=event.involuntary,
            ),
            signals=signals,
            history=history.attempts,
            mrr_major=event.mrr.amount_minor / 100 if event.mrr else None,
            effective_at=event.effective_at,
            learned=await learning.learned(session) if learning else None,
        ),
        rules,
    )
    if latest_version is None:
        latest_version = await repository.latest_version(session, event.cancellation_id)
    version = latest_version + 1
    completed = _completed(
        event,
        finding,
        version=version,
        incomplete=incomplete,
        signal_version=history.signal_version,
        account_owner=event.account_owner or _owner_in_signals(signals),
    )
    explanation = completed.model_dump(mode="json")
    # Envelope.wrap would dump the payload a second time; the explanation is that very dump.
    envelope = Envelope(
        type=completed.TYPE,
        version=completed.VERSION,
        correlation_id=correlation_id,
        source="diagnosis",
        data=explanation,
    )
    return repository.NewDiagnosis(
        envelope=envelope,
        id=completed.diagnosis_id,
        cancellation_id=completed.cancellation_id,
        account_id=completed.account_id,
        version=version,
        symptom=completed.symptom,
        root_cause=completed.root_cause,
        decision=completed.verdict.decision,
        explanation=explanation,
        created_at=utcnow(),
    )


def _log_completed(diagnosis: repository.NewDiagnosis) -> None:
    log.info(
        "diagnosis.completed",
        cancellation_id=diagnosis.cancellation_id,
        version=diagnosis.version,
        root_cause=diagnosis.root_cause,
        decision=diagnosis.decision,
        incomplete=diagnosis.explanation["incomplete"],
    )


def _owner_in_signals(signals: dict[str, dict[str, Any]]) -> str | None:
    """The account owner the relationship signals name (billing's own, on the event, wins over it)."""
    owner = (signals.get("relationship") or {}).get("account_owner")
    return owner.strip().lower() or None if isinstance(owner, str) else None


def _completed(
    event: CancellationReceived,
    finding: Finding,
    *,
    version: int,
    incomplete: bool,
    signal_version: int,
    account_owner: str | None,
) -> DiagnosisCompleted:
    return DiagnosisCompleted(
        diagnosis_id=new_id(),
        diagnosis_version=version,
        cancellation_id=event.cancellation_id,
        account_id=event.account_id,
        customer_id=event.customer_id,
        customer_name=event.customer_name,
        customer_email=event.customer_email,
        account_owner=account_owner,
        source=event.source,
        mrr=event.mrr,
        effective_at=event.effective_at,
        billing_reason=event.billing_reason,
        stated_reason=event.feedback,
        comment=event.comment,
        symptom=finding.symptom,
        root_cause=finding.root_cause,
        hypotheses=[
            Hypothesis(
                root_cause=h.root_cause,
                confidence=h.confidence,
                evidence=[Evidence(signal=c.signal, detail=c.detail, weight=c.weight) for c in h.evidence],
            )
            for h in finding.hypotheses
        ],
        unknowns=[
            Unknown(
                root_cause=u.root_cause,
                signals_to_check=u.signals_to_check,
                questions=[q.text for q in u.questions],
                asks=[DiscoveryQuestion(id=q.id, text=q.text, choices=list(q.choices)) for q in u.questions],
            )
            for u in finding.unknowns
        ],
        tried=finding.tried,
        avoid=finding.avoid,
        verdict=Verdict(decision=finding.decision, reason=finding.reason, priority=finding.priority),
        recommended_playbook=finding.recommended_playbook,
        incomplete=incomplete,
        signal_version=signal_version,
        state_version=event.state_version,
        initiated_by=event.initiated_by,
        playbook_choice=_choice(finding),
    )


def _choice(finding: Finding) -> PlaybookChoice | None:
    choice = finding.playbook_choice
    if choice is None:
        return None
    return PlaybookChoice(
        playbook=choice.playbook,
        reason=choice.reason,
        save_rate=choice.save_rate,
        closed_cases=choice.closed_cases,
        compared=[
            SaveRate(playbook=r.playbook, saved=r.saved, closed=r.closed, save_rate=round(r.save_rate, 3))
            for r in choice.compared
        ],
    )
