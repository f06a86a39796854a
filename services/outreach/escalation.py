"""Firing due timers: climb the ladder for unanswered tasks, close as lost when the sequence is exhausted."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import notifications, repository
from services.outreach.clock import Clock
from services.outreach.endings import close_case
from services.outreach.history import record
from services.outreach.ladder import depends_on_tried, next_rung
from services.outreach.models import Case, Task, Timer
from services.outreach.owners import owners_for
from services.outreach.policy import Policy
from services.outreach.saves import verify_when_due
from services.outreach.steps import add_task, recently_tried
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
    if task is None or task.status == "cancelled":
        return "task_cancelled", None
    if task.status == "done" and task.result != "no_answer":
        return "answered", None
    return await escalate(session, case, task, clock=clock, policy=policy)


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


async def escalate(
    session: AsyncSession, case: Case, task: Task, *, clock: Clock, policy: Policy
) -> tuple[str, str | None]:
    """Climb one rung for an unanswered task, skipping rungs tried recently or below the revenue threshold."""
    now = clock.now()
    tried: set[str] = set()
    if depends_on_tried(
        level=case.escalation_level,
        mrr_minor=case.mrr_minor,
        high_value_threshold_minor=policy.high_value_mrr_minor,
        ladder=policy.ladder,
    ):
        tried = await recently_tried(
            session,
            account_id=case.account_id,
            since=now - policy.tried_window,
            extra=list(case.diagnosis.get("avoid") or []),
        )
    climb = next_rung(
        level=case.escalation_level,
        mrr_minor=case.mrr_minor,
        high_value_threshold_minor=policy.high_value_mrr_minor,
        tried=tried,
        ladder=policy.ladder,
    )
    for name, reason in climb.skipped:
        record(session, case, "rung_skipped", at=now, rung=name, reason=reason)
    case.escalation_level, case.updated_at = climb.level, now
    if climb.rung is None:
        case.sequence_exhausted = True
        record(session, case, "sequence_exhausted", at=now, unanswered_task_id=task.id)
        if case.effective_at is None or case.effective_at <= now:
            await close_case(
                session,
                case,
                outcome="lost",
                reason="sequence exhausted after the effective date",
                clock=clock,
                policy=policy,
            )
            return "exhausted_lost", None
        return "exhausted", None
    rung = climb.rung
    [owner] = await owners_for(session, roles=[rung.owner_role], case_owner=case.owner, rotations=policy.rotations)
    # Asked now, not with the due timer: that statement's snapshot may predate a task added by an instance that
    # released the case just before this one locked it.
    position = await repository.next_position(session, case.id)
    new_task = add_task(
        session,
        case,
        kind="escalation",
        action=rung.action,
        title=rung.title,
        owner_role=rung.owner_role,
        owner=owner,
        position=position,
        due_at=now,
        now=now,
        rung=rung.name,
        escalate_after=policy.escalation_after,
    )
    record(
        session,
        case,
        "escalated",
        at=now,
        rung=rung.name,
        level=climb.level,
        task_id=new_task.id,
        owner=new_task.owner,
        unanswered_task_id=task.id,
    )
    notifications.enqueue(
        session,
        case=case,
        kind="case.escalated",
        policy=policy,
        clock=clock,
        rung=rung.name,
        task_id=new_task.id,
        task_owner=new_task.owner,
        action=rung.action,
    )
    await session.flush()
    log.info("outreach.case.escalated", case_id=case.id, rung=rung.name, owner=new_task.owner)
    return "escalated", rung.name
