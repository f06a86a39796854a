"""Opening a case from a diagnosis, and updating it when a newer diagnosis version arrives."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import notifications, repository
from services.outreach.clock import Clock
from services.outreach.endings import close_case
from services.outreach.history import record
from services.outreach.ladder import intervention_key
from services.outreach.models import Case
from services.outreach.owners import owners_for, owners_for_new_case
from services.outreach.playbooks import Playbook, choose
from services.outreach.policy import Policy
from services.outreach.steps import (
    add_playbook_steps,
    add_timer,
    cancel_open_work,
    may_skip,
    recently_tried,
    steps_to_work,
)
from shared.events import DiagnosisCompleted
from shared.logs import get_logger

log = get_logger("outreach.cases")


async def open_or_update_case(
    session: AsyncSession,
    diagnosis: DiagnosisCompleted,
    *,
    policy: Policy,
    clock: Clock,
    correlation_id: str | None = None,
) -> Case:
    """One case per cancellation; a newer diagnosis version updates it, an older one changes nothing."""
    found = await repository.case_and_early_withdrawal(session, diagnosis.cancellation_id)
    case_id = found.case_id
    if case_id is None:
        return await _open(
            session,
            diagnosis,
            policy=policy,
            clock=clock,
            correlation_id=correlation_id,
            early_withdrawal=found.early_withdrawal,
        )
    case = await repository.case_by_id(session, case_id)  # locked by the statement above
    if diagnosis.diagnosis_version <= case.diagnosis_version:
        log.info(
            "outreach.diagnosis.stale",
            case_id=case.id,
            version=diagnosis.diagnosis_version,
            current=case.diagnosis_version,
        )
        return case
    await _update(session, case, diagnosis, policy=policy, clock=clock)
    return case


def _apply(case: Case, diagnosis: DiagnosisCompleted) -> None:
    case.symptom = diagnosis.symptom
    case.root_cause = diagnosis.root_cause
    case.decision = diagnosis.verdict.decision
    case.priority = diagnosis.verdict.priority
    case.diagnosis_version = diagnosis.diagnosis_version
    case.diagnosis = diagnosis.model_dump(mode="json")
    case.customer_name = diagnosis.customer_name or case.customer_name
    if diagnosis.mrr is not None:
        case.mrr_minor, case.currency = diagnosis.mrr.amount_minor, diagnosis.mrr.currency
    case.effective_at = diagnosis.effective_at or case.effective_at


async def _open(
    session: AsyncSession,
    diagnosis: DiagnosisCompleted,
    *,
    policy: Policy,
    clock: Clock,
    correlation_id: str | None,
    early_withdrawal: str | None,
) -> Case:
    now = clock.now()
    playbook = choose(
        policy.playbooks,
        decision=diagnosis.verdict.decision,
        recommended=diagnosis.recommended_playbook,
        root_cause=diagnosis.root_cause,
    )
    case = Case(
        id=str(uuid.uuid4()),
        cancellation_id=diagnosis.cancellation_id,
        account_id=diagnosis.account_id,
        status="open",
        opened_at=now,
        updated_at=now,
        closed_at=None,
        playbook=playbook.name,
        escalation_level=0,
        sequence_exhausted=False,
        owner=None,
    )
    _apply(case, diagnosis)
    session.add(case)
    record(
        session,
        case,
        "opened",
        at=now,
        diagnosis_version=diagnosis.diagnosis_version,
        root_cause=diagnosis.root_cause,
        decision=diagnosis.verdict.decision,
        playbook=playbook.name,
    )
    if early_withdrawal is not None:
        await session.flush()
        # The customer already stayed: keep the record, but there is nothing left to work.
        await close_case(
            session,
            case,
            outcome="saved",
            reason=f"cancellation withdrawn before diagnosis: {early_withdrawal}",
            clock=clock,
            policy=policy,
            correlation_id=correlation_id,
        )
        return case
    tried = await _tried(session, case, playbook, diagnosis, policy=policy, now=now)
    steps = steps_to_work(session, case, playbook, now=now, tried=tried, done_here=set())
    case.owner, owners = await owners_for_new_case(
        session,
        account_owner=diagnosis.account_owner,
        roles=[step.owner_role for step in steps],
        rotations=policy.rotations,
    )
    add_playbook_steps(session, case, playbook, steps, owners=owners, position=0, now=now)
    if playbook.escalates:
        # The effective date passing with the sequence exhausted means the customer is lost.
        effective = case.effective_at or now
        if effective > now or not steps:
            add_timer(session, case=case, task=None, kind="expire", due_at=effective, now=now)
        else:
            # Already past (a subscription deleted rather than scheduled to end): the timer would fire at once
            # and only note it; running out of rungs then closes the case as lost (see escalation.escalate).
            record(session, case, "effective_date_passed", at=now, open_tasks=len(steps))
    notifications.enqueue(session, case=case, kind="case.opened", policy=policy, clock=clock, playbook=playbook.name)
    # No flush here: the commit writes the rows, and when several diagnoses are handled in one transaction it
    # writes all their cases, tasks and timers in one batched INSERT per table instead of several per case.
    log.info("outreach.case.opened", case_id=case.id, playbook=playbook.name, owner=case.owner)
    return case


async def _tried(
    session: AsyncSession,
    case: Case,
    playbook: Playbook,
    diagnosis: DiagnosisCompleted,
    *,
    policy: Policy,
    now: datetime,
) -> set[str]:
    """What was tried recently for the account; not asked for when no step of the playbook could be skipped."""
    if not may_skip(playbook):
        return set()
    return await recently_tried(
        session, account_id=case.account_id, since=now - policy.tried_window, extra=list(diagnosis.avoid)
    )


async def _update(
    session: AsyncSession, case: Case, diagnosis: DiagnosisCompleted, *, policy: Policy, clock: Clock
) -> None:
    now = clock.now()
    _apply(case, diagnosis)
    case.updated_at = now
    record(
        session,
        case,
        "diagnosis_updated",
        at=now,
        diagnosis_version=diagnosis.diagnosis_version,
        root_cause=diagnosis.root_cause,
        decision=diagnosis.verdict.decision,
    )
    if case.status != "open":
        return
    playbook = choose(
        policy.playbooks,
        decision=diagnosis.verdict.decision,
        recommended=diagnosis.recommended_playbook,
        root_cause=diagnosis.root_cause,
    )
    if playbook.name == case.playbook:
        return
    # Open steps of the old playbook go; completed work stays, and is not asked for again. A playbook that
    # does not escalate (moving on) also stops the ladder.
    kinds = ("step", "closing") if playbook.escalates else ("step", "closing", "escalation")
    cancelled = await cancel_open_work(
        session, case, now=now, reason=f"playbook switched to {playbook.name}", kinds=kinds
    )
    done = await repository.done_on_case(session, case.id)
    tried = await _tried(session, case, playbook, diagnosis, policy=policy, now=now)
    record(
        session, case, "playbook_switched", at=now, before=case.playbook, after=playbook.name, tasks_cancelled=cancelled
    )
    case.playbook = playbook.name
    steps = steps_to_work(
        session,
        case,
        playbook,
        now=now,
        tried=tried,
        done_here={intervention_key(action, offer) for action, offer in done},
    )
    owners = await owners_for(
        session, roles=[step.owner_role for step in steps], case_owner=case.owner, rotations=policy.rotations
    )
    add_playbook_steps(
        session,
        case,
        playbook,
        steps,
        owners=owners,
        position=await repository.next_position(session, case.id),
        now=now,
    )
    await session.flush()
