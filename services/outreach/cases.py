"""Opening a case from a diagnosis, and updating it when a newer diagnosis version arrives."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import notifications, repository
from services.outreach.attempts import TIE_NOTE, CancellationPlace, Known, Placement, place_cancellation
from services.outreach.clock import Clock
from services.outreach.endings import close_case
from services.outreach.history import record, record_on_new_case
from services.outreach.ladder import intervention_key
from services.outreach.models import Case
from services.outreach.owners import owners_for, owners_for_new_case, team_of_this_transaction
from services.outreach.playbooks import Playbook, choose
from services.outreach.policy import Policy
from services.outreach.recipients import staff, tell_assigned, timing
from services.outreach.repository import SubscriptionFacts
from services.outreach.saves import cancelled_again
from services.outreach.steps import (
    add_playbook_steps,
    add_timer,
    cancel_open_work,
    may_skip,
    recently_tried,
    steps_to_work,
)
from shared.events import DiagnosisCompleted
from shared.ids import new_id
from shared.logs import get_logger

log = get_logger("outreach.cases")


async def open_or_update_case(
    session: AsyncSession,
    diagnosis: DiagnosisCompleted,
    *,
    policy: Policy,
    clock: Clock,
    correlation_id: str | None = None,
    facts: SubscriptionFacts | None = None,
) -> Case | None:
    """A case per attempt to leave: a new attempt opens one, a newer diagnosis of the open one updates it.

    Late copies of an earlier attempt open nothing and reopen nothing; returns the case concerned, if any.
    ``facts`` are the subscription's, when already read for a batch.
    """
    if facts is None:
        facts = await repository.subscription_facts(
            session,
            diagnosis.cancellation_id,
            account_id=diagnosis.account_id,
            worked_since=clock.now() - policy.tried_window,
        )
    place = place_cancellation(
        diagnosis.state_version,
        Known(
            open_case_after=None if facts.open_case_id is None else await _after(session, facts.open_case_id),
            latest_case_after=facts.latest_case_after,
            staying_version=facts.staying_version,
            previous_staying_version=facts.previous_staying_version or 0,
        ),
    )
    if place.placement is Placement.UPDATE_OPEN:
        assert facts.open_case_id is not None
        case = await repository.case_by_id(session, facts.open_case_id)  # locked by the statement above
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
    if place.placement is Placement.LATE_COPY:
        log.info(
            "outreach.diagnosis.earlier_attempt",
            cancellation_id=diagnosis.cancellation_id,
            state_version=diagnosis.state_version,
            attempt_after=place.after_version,
        )
        return None
    previous = None if facts.latest_case_id is None else await repository.case_by_id(session, facts.latest_case_id)
    return await _open(
        session,
        diagnosis,
        policy=policy,
        clock=clock,
        correlation_id=correlation_id,
        place=place,
        previous=previous,
        account_worked_lately=facts.account_worked_since,
    )


async def facts_read_together(
    session: AsyncSession, diagnoses: list[DiagnosisCompleted], *, policy: Policy, clock: Clock
) -> dict[str, SubscriptionFacts]:
    """The facts of a batch's diagnoses read in one go, by cancellation id: only for those whose subscription and
    account no other diagnosis of the batch concerns. The facts of one that shares them depend on what the diagnoses
    before it in the batch do, so it reads its own when its turn comes."""
    cancellations = Counter(diagnosis.cancellation_id for diagnosis in diagnoses)
    accounts = Counter(diagnosis.account_id for diagnosis in diagnoses)
    alone = [
        (diagnosis.cancellation_id, diagnosis.account_id)
        for diagnosis in diagnoses
        if cancellations[diagnosis.cancellation_id] == 1 and accounts[diagnosis.account_id] == 1
    ]
    if not alone:
        return {}
    return await repository.subscription_facts_of_many(session, alone, worked_since=clock.now() - policy.tried_window)


async def _after(session: AsyncSession, case_id: str) -> int:
    return (await repository.case_by_id(session, case_id)).after_version


def _apply(case: Case, diagnosis: DiagnosisCompleted) -> None:
    case.symptom = diagnosis.symptom
    case.root_cause = diagnosis.root_cause
    case.decision = diagnosis.verdict.decision
    case.priority = diagnosis.verdict.priority
    case.diagnosis_version = diagnosis.diagnosis_version
    case.diagnosis = diagnosis.model_dump(mode="json")
    case.customer_name = diagnosis.customer_name or case.customer_name
    case.customer_email = diagnosis.customer_email or case.customer_email
    if diagnosis.mrr is not None:
        case.mrr_minor, case.currency = diagnosis.mrr.amount_minor, diagnosis.mrr.currency
    case.effective_at = diagnosis.effective_at or case.effective_at
    case.state_version = max(case.state_version or 0, diagnosis.state_version)
    case.initiated_by = diagnosis.initiated_by


async def _open(
    session: AsyncSession,
    diagnosis: DiagnosisCompleted,
    *,
    policy: Policy,
    clock: Clock,
    correlation_id: str | None,
    place: CancellationPlace,
    previous: Case | None,
    account_worked_lately: bool,
) -> Case:
    now = clock.now()
    playbook = choose(
        policy.playbooks,
        decision=diagnosis.verdict.decision,
        recommended=diagnosis.recommended_playbook,
        root_cause=diagnosis.root_cause,
    )
    case = Case(
        id=new_id(),
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
        after_version=place.after_version,
        previous_case_id=previous.id if previous else None,
    )
    _apply(case, diagnosis)
    session.add(case)
    record_on_new_case(
        session,
        case,
        "opened",
        at=now,
        diagnosis_version=diagnosis.diagnosis_version,
        root_cause=diagnosis.root_cause,
        decision=diagnosis.verdict.decision,
        playbook=playbook.name,
        state_version=diagnosis.state_version,
        account_owner=diagnosis.account_owner,
    )
    if previous is not None:
        await cancelled_again(session, previous, new_case=case, now=now)
    if place.placement is Placement.OPEN_WITHDRAWN:
        await session.flush()
        # The customer stayed before anyone could reach them: keep the record, nothing is left to work.
        await close_case(
            session,
            case,
            outcome="stayed_unprompted",
            reason="cancellation withdrawn before its diagnosis",
            clock=clock,
            policy=policy,
            correlation_id=correlation_id,
        )
        return case
    if place.placement is Placement.OPEN_TIED:
        record_on_new_case(
            session,
            case,
            "same_version_tie",
            at=now,
            version=diagnosis.state_version,
            note=TIE_NOTE,
        )
    tried = await _tried(session, case, playbook, diagnosis, policy=policy, now=now, worked=account_worked_lately)
    steps = steps_to_work(session, case, playbook, now=now, tried=tried, done_here=set())
    team = await team_of_this_transaction(session)
    case.owner, owners = await owners_for_new_case(
        session,
        team=team,
        account_owner=diagnosis.account_owner,
        roles=[step.owner_role for step in steps],
        rotations=policy.rotations,
    )
    people = team.staff({case.owner, *owners})
    tasks = add_playbook_steps(
        session, case, playbook, steps, owners=owners, position=0, now=now, timing=timing(policy, playbook.name, people)
    )
    await tell_assigned(session, case, tasks, people=people, policy=policy, clock=clock)
    if playbook.escalates:
        # The effective date passing with the sequence exhausted means the customer is lost.
        effective = case.effective_at or now
        if effective > now or not steps:
            add_timer(session, case=case, task=None, kind="expire", due_at=effective, now=now)
        else:
            # Already past (a subscription deleted rather than scheduled to end): the timer would fire at once
            # and only note it; running out of rungs then closes the case as lost (see escalation.escalate).
            record_on_new_case(session, case, "effective_date_passed", at=now, open_tasks=len(steps))
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
    worked: bool,
) -> set[str]:
    """What was tried recently for the account; not asked for when no step of the playbook could be skipped, nor
    when nothing was done for the account within the window (``worked``, known with the case's placing)."""
    if not may_skip(playbook):
        return set()
    if not worked:
        return set(diagnosis.avoid)
    return await recently_tried(
        session, account_id=case.account_id, since=now - policy.tried_window, extra=list(diagnosis.avoid)
    )


async def _update(
    session: AsyncSession, case: Case, diagnosis: DiagnosisCompleted, *, policy: Policy, clock: Clock
) -> None:
    now = clock.now()
    effective_before = case.effective_at
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
    if case.effective_at != effective_before:
        await _move_effective_date(session, case, before=effective_before, policy=policy, now=now)
    playbook = choose(
        policy.playbooks,
        decision=diagnosis.verdict.decision,
        recommended=diagnosis.recommended_playbook,
        root_cause=diagnosis.root_cause,
    )
    if playbook.name == case.playbook:
        return
    await switch_playbook(session, case, playbook, policy=policy, clock=clock, avoid=list(diagnosis.avoid))


async def switch_playbook(
    session: AsyncSession,
    case: Case,
    playbook: Playbook,
    *,
    policy: Policy,
    clock: Clock,
    avoid: list[str],
    actor: str | None = None,
    reason: str | None = None,
) -> None:
    """Work another playbook on an open case: its open steps go, completed work stays and is not asked again."""
    now = clock.now()
    # A playbook that does not escalate (moving on) also stops the ladder.
    kinds = ("step", "closing") if playbook.escalates else ("step", "closing", "escalation")
    cancelled = await cancel_open_work(
        session, case, now=now, reason=f"playbook switched to {playbook.name}", kinds=kinds
    )
    done = await repository.done_on_case(session, case.id)
    tried = (
        await recently_tried(session, account_id=case.account_id, since=now - policy.tried_window, extra=avoid)
        if may_skip(playbook)
        else set()
    )
    record(
        session,
        case,
        "playbook_switched",
        at=now,
        actor=actor,
        before=case.playbook,
        after=playbook.name,
        tasks_cancelled=cancelled,
        reason=reason,
    )
    case.playbook, case.updated_at = playbook.name, now
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
    people = await staff(session, set(owners))
    tasks = add_playbook_steps(
        session,
        case,
        playbook,
        steps,
        owners=owners,
        position=await repository.next_position(session, case.id),
        now=now,
        timing=timing(policy, playbook.name, people),
    )
    await tell_assigned(session, case, tasks, people=people, policy=policy, clock=clock)
    await session.flush()


async def _move_effective_date(
    session: AsyncSession, case: Case, *, before: datetime | None, policy: Policy, now: datetime
) -> None:
    """The scheduled cancellation's date changed (Stripe ``cancel_at`` moved): the expiry timer moves with it."""
    record(
        session,
        case,
        "effective_date_moved",
        at=now,
        before=before.isoformat() if before else None,
        after=case.effective_at.isoformat() if case.effective_at else None,
    )
    await repository.cancel_expiry_timers(session, case.id, now=now, outcome="effective date moved")
    playbook = policy.playbooks.get(case.playbook or "")
    if case.effective_at is not None and case.effective_at > now and (playbook is None or playbook.escalates):
        add_timer(session, case=case, task=None, kind="expire", due_at=case.effective_at, now=now)
