"""Our own inaction: a task overdue and not done reminds its owner, tells the manager, then moves to them.

It never moves the customer ladder. Owners are also told shortly before a task is due.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import messages, repository
from services.outreach.climbing import TaskState, inaction_step
from services.outreach.clock import Clock
from services.outreach.history import record
from services.outreach.ladder_file import InactionRung
from services.outreach.models import Case, Person, Task, Timer
from services.outreach.policy import Policy
from services.outreach.recipients import manager_of_owner, staff, tell, timing
from services.outreach.steps import add_timer


def task_state(task: Task) -> TaskState:
    """What the ladders need to know about a task."""
    return TaskState(
        id=task.id, status=task.status, due_at=task.due_at, snoozed_until=task.snoozed_until, rung=task.rung
    )


def _about(task: Task) -> dict[str, object]:
    return {"task_id": task.id, "title": task.title, "due_at": task.due_at.isoformat(), "task_owner": task.owner}


async def nudge(
    session: AsyncSession, timer: Timer, case: Case, task: Task | None, *, clock: Clock, policy: Policy
) -> str:
    """Apply the inaction rung this timer stands for, if the task is still open and overdue; then time the next."""
    if task is None or task.status != "open":
        return "task_closed"
    now, step = clock.now(), timer.step or 0
    people = await staff(session, {task.owner})
    task_timing = timing(policy, case.playbook, people)
    state = task_state(task)
    found = inaction_step(
        task_timing.ladder, task=state, step=step, now=now, hours=task_timing.hours, zone=task_timing.zone(task.owner)
    )
    if found.look_again_at is not None:  # snoozed, or moved later since this timer was set
        await repository.reschedule_timer(session, timer, due_at=found.look_again_at, now=now)
        return "snoozed" if state.holds_the_ladder(now) else "not_yet"
    if found.rung is None:
        return "ladder_done"
    told = await _apply(session, case, task, found.rung, step=step, people=people, clock=clock, policy=policy)
    record(session, case, "nudged", at=now, rung=found.rung.name, step=step, task_id=task.id, told=told)
    if step + 1 < len(task_timing.ladder.inaction):
        following = task_timing.ladder.inaction[step + 1]
        due_at = task_timing.due(state.effective_due(), following.delay, task.owner)
        add_timer(session, case=case, task=task, kind="nudge", due_at=max(due_at, now), now=now, step=step + 1)
    return f"nudged:{found.rung.name}"


async def _apply(
    session: AsyncSession,
    case: Case,
    task: Task,
    rung: InactionRung,
    *,
    step: int,
    people: dict[str, Person],
    clock: Clock,
    policy: Policy,
) -> str | None:
    """Remind the owner, tell the manager or hand the task to the manager; who was told (None: nobody to tell)."""
    key = f"nudge|{task.id}|{step}"
    if rung.role == "owner":
        owner = people.get((task.owner or "").lower())
        told = await tell(
            session, person=owner, kind=messages.OVERDUE, key=key, policy=policy, clock=clock, case=case, **_about(task)
        )
        return task.owner if told else None
    manager = await manager_of_owner(session, task.owner)
    if manager is None:
        return None
    if rung.action == "reassign":
        previous, task.owner = task.owner, manager.email
        record(session, case, "task_reassigned", at=clock.now(), task_id=task.id, before=previous, after=manager.email)
        await tell(
            session,
            person=manager,
            kind=messages.ASSIGNED,
            key=key,
            policy=policy,
            clock=clock,
            case=case,
            reason=f"It was overdue with {previous}",
            **_about(task),
        )
        return manager.email
    await tell(
        session,
        person=manager,
        kind=messages.OVERDUE_IN_TEAM,
        key=key,
        policy=policy,
        clock=clock,
        case=case,
        **_about(task),
    )
    return manager.email


async def warn_due_soon(session: AsyncSession, case: Case, task: Task | None, *, clock: Clock, policy: Policy) -> str:
    """Tell the owner their task is due soon, unless it is done or snoozed past its due time."""
    if task is None or task.status != "open":
        return "task_closed"
    if task.snoozed_until is not None and task.snoozed_until > task.due_at:
        return "snoozed"
    owner = (await staff(session, {task.owner})).get((task.owner or "").lower())
    told = await tell(
        session,
        person=owner,
        kind=messages.DUE_SOON,
        key=f"due_soon|{task.id}",
        policy=policy,
        clock=clock,
        case=case,
        **_about(task),
    )
    return "warned" if told else "nobody_to_tell"
