"""Firing due timers: the customer ladder climbs, our inaction ladder nudges, the effective date passes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import messages, notifications, repository
from services.outreach.climbing import climb_fires_at, climb_may_fire, next_silence_rung
from services.outreach.clock import Clock
from services.outreach.endings import close_case
from services.outreach.history import record
from services.outreach.ladder import REPEATABLE_ACTIONS
from services.outreach.models import Case, Task, Timer
from services.outreach.nudges import nudge, task_state, warn_due_soon
from services.outreach.owners import owners_for
from services.outreach.policy import Policy
from services.outreach.recipients import staff, tell, timing
from services.outreach.saves import verify_when_due
from services.outreach.steps import add_task, add_timer, recently_tried
from shared.logs import get_logger

log = get_logger("outreach.escalation")


@dataclass(frozen=True)
class Fired:
    timer_id: str
    case_id: str
    outcome: str
    rung: str | None = None


async def fire_due_timers(session: AsyncSession, *, clock: Clock, policy: Policy, batch: int = 1) -> list[Fired]:
    """Fire up to ``batch`` due timers, each exactly once (skip-locked rows on PostgreSQL; SQLite has one writer).

    Call it with one timer per transaction: a transaction then locks one timer, its case and at most one
    rotation cursor, so two instances can never wait on each other in a cycle.
    """
    now = clock.now()
    fired = []
    for timer, case, timer_task in await repository.due_timers(session, now=now, limit=batch):
        # Belt and braces: only the instance whose update flips fired_at does the work.
        if not await repository.claim_timer(session, timer.id, now=now):
            continue
        outcome, rung = await _fire(session, timer, case, timer_task, clock=clock, policy=policy)
        await repository.record_timer_outcome(session, timer.id, outcome)
        fired.append(Fired(timer_id=timer.id, case_id=timer.case_id, outcome=outcome, rung=rung))
    return fired


async def _fire(
    session: AsyncSession, timer: Timer, case: Case, task: Task | None, *, clock: Clock, policy: Policy
) -> tuple[str, str | None]:
    if timer.kind == "verify":
        return await verify_when_due(session, case, now=clock.now()), None
    if case.status != "open":
        return "case_closed", None
    if timer.kind == "expire":
        return await _expire(session, case, clock=clock, policy=policy), None
    if timer.kind == "climb":
        return await climb(session, timer, case, clock=clock, policy=policy)
    if timer.kind == "nudge":
        return await nudge(session, timer, case, task, clock=clock, policy=policy), None
    if timer.kind == "due_soon":
        return await warn_due_soon(session, case, task, clock=clock, policy=policy), None
    return "superseded", None  # a timer of the ladder before it was data: the new ladders took over


async def _expire(session: AsyncSession, case: Case, *, clock: Clock, policy: Policy) -> str:
    open_tasks = await repository.count_open_tasks(session, case.id)
    if case.sequence_exhausted or not open_tasks:
        await close_case(
            session,
            case,
            outcome="lost",
            reason="effective date passed with the sequence exhausted",
            clock=clock,
            policy=policy,
        )
        return "lost"
    record(session, case, "effective_date_passed", at=clock.now(), open_tasks=open_tasks)
    return "still_working"


async def current_rung(session: AsyncSession, case: Case, *, policy: Policy) -> tuple[str | None, int]:
    """The rung of the customer ladder the case stands on (None: still on the playbook), and how often it was worked."""
    ladder = policy.ladder_for(case.playbook)
    if not 0 < case.escalation_level <= len(ladder.silence):
        return None, 0
    name = ladder.silence[case.escalation_level - 1].name
    return name, await repository.times_rung_worked(session, case.id, name)


async def schedule_climb(session: AsyncSession, case: Case, task: Task, *, clock: Clock, policy: Policy) -> None:
    """A contact attempt went unanswered: the customer ladder climbs one rung, after that rung's delay."""
    now = clock.now()
    current, times_worked = await current_rung(session, case, policy=policy)
    preview = next_silence_rung(
        policy.ladder_for(case.playbook),
        current=current,
        times_worked=times_worked,
        mrr_minor=case.mrr_minor,
        high_value_mrr_minor=policy.high_value_mrr_minor,
    )
    fires_at = now
    if preview.rung is not None:
        zone = timing(policy, case.playbook, await staff(session, {case.owner})).zone(case.owner)
        fires_at = climb_fires_at(preview.rung, unanswered_at=now, hours=policy.hours_for(case.playbook), zone=zone)
    add_timer(session, case=case, task=task, kind="climb", due_at=fires_at, now=now)
    record(
        session,
        case,
        "climb_scheduled",
        at=now,
        unanswered_task_id=task.id,
        rung=preview.rung.name if preview.rung else None,
        fires_at=fires_at.isoformat(),
    )


async def climb(
    session: AsyncSession, timer: Timer, case: Case, *, clock: Clock, policy: Policy
) -> tuple[str, str | None]:
    """Climb one rung of the customer ladder, unless the previous rung's task still holds it."""
    now = clock.now()
    open_rungs = await repository.open_escalation_tasks(session, case.id)
    wait = climb_may_fire(now=now, open_rung_tasks=[task_state(task) for task in open_rungs])
    if wait is not None:
        await repository.reschedule_timer(session, timer, due_at=wait, now=now)
        return "waiting_for_previous_rung", None
    current, times_worked = await current_rung(session, case, policy=policy)
    ladder = policy.ladder_for(case.playbook)
    choose = partial(
        next_silence_rung,
        ladder,
        current=current,
        times_worked=times_worked,
        mrr_minor=case.mrr_minor,
        high_value_mrr_minor=policy.high_value_mrr_minor,
    )
    step = choose()
    if step.rung is not None and not step.repeat and step.rung.action not in REPEATABLE_ACTIONS:
        # Only a rung that is not a cheap, repeatable touch can be skipped for having been tried: ask only then.
        tried = await recently_tried(
            session,
            account_id=case.account_id,
            since=now - policy.tried_window,
            extra=list(case.diagnosis.get("avoid") or []),
        )
        step = choose(tried=tried)
    for name, reason in step.skipped:
        record(session, case, "rung_skipped", at=now, rung=name, reason=reason)
    case.updated_at = now
    if step.rung is None:
        return await _exhausted(session, case, timer, clock=clock, policy=policy), None
    rung = step.rung
    [owner] = await owners_for(session, roles=[rung.role], case_owner=case.owner, rotations=policy.rotations)
    people = await staff(session, {owner})
    task_timing = timing(policy, case.playbook, people)
    new_task = add_task(
        session,
        case,
        kind="escalation",
        action=rung.action,
        title=rung.title,
        owner_role=rung.role,
        owner=owner,
        # Asked now, not with the due timer: that statement's snapshot may predate a task added by an instance
        # that released the case just before this one locked it.
        position=await repository.next_position(session, case.id),
        due_at=task_timing.due(now, rung.due_after, owner),
        now=now,
        timing=task_timing,
        playbook=case.playbook,
        rung=rung.name,
    )
    case.escalation_level = step.index + 1
    record(
        session,
        case,
        "escalated",
        at=now,
        rung=rung.name,
        level=case.escalation_level,
        repeat=step.repeat,
        task_id=new_task.id,
        owner=owner,
        unanswered_task_id=timer.task_id,
    )
    notifications.enqueue(
        session,
        case=case,
        kind="case.escalated",
        policy=policy,
        clock=clock,
        rung=rung.name,
        task_id=new_task.id,
        task_owner=owner,
        action=rung.action,
    )
    await tell(
        session,
        person=people.get(owner.lower()),
        kind=messages.ESCALATED,
        key=f"escalated|{new_task.id}",
        policy=policy,
        clock=clock,
        case=case,
        rung=rung.name,
        title=rung.title,
        task_id=new_task.id,
        due_at=new_task.due_at.isoformat(),
    )
    await session.flush()
    log.info("outreach.case.escalated", case_id=case.id, rung=rung.name, owner=owner)
    return "escalated", rung.name


async def _exhausted(session: AsyncSession, case: Case, timer: Timer, *, clock: Clock, policy: Policy) -> str:
    now = clock.now()
    case.sequence_exhausted = True
    record(session, case, "sequence_exhausted", at=now, unanswered_task_id=timer.task_id)
    if case.effective_at is None or case.effective_at <= now:
        await close_case(
            session,
            case,
            outcome="lost",
            reason="sequence exhausted after the effective date",
            clock=clock,
            policy=policy,
        )
        return "exhausted_lost"
    return "exhausted"
