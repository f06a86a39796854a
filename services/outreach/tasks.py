"""Finding tasks and completing them: every completion is logged as an intervention."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.attempts import CONTACT_RESULTS
from services.outreach.climbing import is_unanswered
from services.outreach.clock import Clock
from services.outreach.endings import close_case
from services.outreach.escalation import schedule_climb
from services.outreach.history import publish, record
from services.outreach.models import Case, Task
from services.outreach.policy import Policy
from shared.events import InterventionLogged, correlation_id_from
from shared.ids import new_id


class TaskNotFound(LookupError):
    pass


class TaskNotOpen(Exception):
    """The task was completed or cancelled already; the message says when and why."""


# Reading tasks is one query; completing them is the use case below.
list_tasks = repository.tasks


async def complete_task(
    session: AsyncSession,
    task_id: str,
    *,
    result: str,
    note: str | None,
    performed_by: str | None,
    clock: Clock,
    policy: Policy,
    correlation_id: str | None = None,
) -> Task:
    """Record what happened; an answered task stops its escalation, a closing task ends the case."""
    task = await repository.locked_task(session, task_id)
    if task is None:
        raise TaskNotFound(task_id)
    if task.status == "done":
        raise TaskNotOpen(
            f"task {task_id} was already completed at {task.completed_at.isoformat() if task.completed_at else 'some time'}"
            f" with result {task.result!r}"
        )
    if task.status != "open":
        raise TaskNotOpen(f"task {task_id} was {task.status}: {task.note or 'no reason recorded'}")
    case = await repository.locked_case(session, task.case_id)
    now = clock.now()
    who = performed_by or task.owner
    task.status, task.result, task.note, task.completed_by, task.completed_at = "done", result, note, who, now
    case.first_touched_at = case.first_touched_at or now
    case.updated_at = now
    # Done, whatever the result: our inaction ladder and the due-soon notice for this task stop.
    await repository.cancel_task_timers(session, task.id, now=now, outcome="task done")
    if case.status == "open":
        await _customer_ladder(session, case, task, result=result, clock=clock, policy=policy)
    record(
        session,
        case,
        "task_completed",
        at=now,
        actor=who,
        task_id=task.id,
        action=task.action,
        offer=task.offer,
        result=result,
        note=note,
    )
    await publish(
        session,
        InterventionLogged(
            intervention_id=new_id(),
            case_id=case.id,
            cancellation_id=case.cancellation_id,
            account_id=case.account_id,
            action=task.action if task.offer is None else f"offer:{task.offer}",
            result=result,
            note=note,
            performed_by=who,
            performed_at=now,
            playbook=task.playbook or case.playbook,
            move=_move_of(task, policy),
        ),
        correlation_id=correlation_id or correlation_id_from(case.cancellation_id),
    )
    if task.kind == "closing" and case.status == "open":
        await close_case(
            session,
            case,
            outcome="moved_on",
            reason=note or "closing task done",
            clock=clock,
            policy=policy,
            actor=who,
            correlation_id=correlation_id,
        )
    await session.flush()
    return task


def _move_of(task: Task, policy: Policy) -> str | None:
    """The move of the playbook step the task was made from; escalation rungs are not playbook moves."""
    playbook = policy.playbooks.get(task.playbook or "")
    if task.kind == "escalation" or playbook is None:
        return None
    return playbook.move_of(action=task.action, offer=task.offer, title=task.title)


async def _customer_ladder(
    session: AsyncSession, case: Case, task: Task, *, result: str, clock: Clock, policy: Policy
) -> None:
    """No answer climbs the customer ladder one rung (on playbooks that escalate); an answer stops the climb."""
    if is_unanswered(policy.ladder_for(case.playbook), result):
        playbook = policy.playbooks.get(case.playbook or "")
        if playbook is None or playbook.escalates:
            await schedule_climb(session, case, task, clock=clock, policy=policy)
        return
    if result in CONTACT_RESULTS:
        cancelled = await repository.cancel_case_timers_of_kind(
            session, case.id, "climb", now=clock.now(), outcome="customer answered"
        )
        if cancelled:
            record(session, case, "climb_stopped", at=clock.now(), task_id=task.id, result=result, climbs=cancelled)
