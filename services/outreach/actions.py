"""What a person (on the desk) or a tool (on /v1/) does to a case: reassign a task or the case, snooze a task,
add a note, switch the playbook. Each is written to the case's history with who did it. None of these is an
attempt on the customer, so none publishes ``intervention.logged`` (completing a task does: see tasks.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import messages, people, recipients, repository
from services.outreach.cases import switch_playbook
from services.outreach.clock import Clock
from services.outreach.history import record
from services.outreach.models import Case, CaseEvent, Task
from services.outreach.policy import Policy
from services.outreach.tasks import TaskNotFound, TaskNotOpen

LONGEST_SNOOZE = timedelta(days=365)


class CaseNotFound(LookupError):
    pass


class CaseNotOpen(Exception):
    """The case was closed meanwhile; the message says how and when."""


class ActionRefused(ValueError):
    """The request cannot be done as asked (an unknown person or playbook, a snooze into the past)."""


async def _open_case(session: AsyncSession, case_id: str) -> Case:
    case = await repository.case_with_history(session, case_id, lock=True)
    if case is None:
        raise CaseNotFound(case_id)
    if case.status != "open":
        closed = case.closed_at.isoformat() if case.closed_at else "earlier"
        raise CaseNotOpen(f"case {case_id} was closed as {case.status} at {closed}: {case.closed_reason or ''}".strip())
    return case


async def _open_task(session: AsyncSession, task_id: str) -> Task:
    task = await repository.locked_task(session, task_id)
    if task is None:
        raise TaskNotFound(task_id)
    if task.status == "done":
        when = task.completed_at.isoformat() if task.completed_at else "earlier"
        raise TaskNotOpen(f"task {task_id} was already completed at {when} with result {task.result!r}")
    if task.status != "open":
        raise TaskNotOpen(f"task {task_id} was {task.status}: {task.note or 'no reason recorded'}")
    return task


async def assignee(session: AsyncSession, to: str) -> str:
    """Who work can go to: an active person's email; any name while nobody is set up (the rotations' names)."""
    if not await people.anyone_set_up(session):
        name = to.strip()
        if not name:
            raise ActionRefused("name who should take it")
        return name
    person = await people.find_by_email(session, to)
    if person is None or not person.active:
        raise ActionRefused(f"no active person has the email {to!r}")
    return person.email


async def reassign_task(
    session: AsyncSession, task_id: str, *, to: str, actor: str | None, clock: Clock, policy: Policy
) -> Task:
    """Give an open task to another person, who is told (unless they took it themselves)."""
    task = await _open_task(session, task_id)
    owner = await assignee(session, to)
    case = await _open_case(session, task.case_id)
    before, task.owner = task.owner, owner
    case.updated_at = clock.now()
    event = record(
        session, case, "task_reassigned", at=clock.now(), actor=actor, task_id=task.id, before=before, after=owner
    )
    await session.flush()
    if before != owner:
        await _tell_new_owner(session, case, [task], owner=owner, actor=actor, event=event, clock=clock, policy=policy)
    return task


async def reassign_case(
    session: AsyncSession, case_id: str, *, to: str, actor: str | None, clock: Clock, policy: Policy
) -> Case:
    """Give the case to another person, who is told (unless they took it themselves); the old owner's open tasks
    go with it."""
    case = await _open_case(session, case_id)
    owner = await assignee(session, to)
    before, case.owner, case.updated_at = case.owner, owner, clock.now()
    moved = [task for task in case.tasks if task.status == "open" and task.owner == before and before != owner]
    for task in moved:
        task.owner = owner
    event = record(
        session,
        case,
        "case_reassigned",
        at=clock.now(),
        actor=actor,
        before=before,
        after=owner,
        tasks_moved=len(moved),
    )
    await session.flush()
    if before != owner:
        await _tell_new_owner(session, case, moved, owner=owner, actor=actor, event=event, clock=clock, policy=policy)
    return case


async def _tell_new_owner(
    session: AsyncSession,
    case: Case,
    tasks: list[Task],
    *,
    owner: str,
    actor: str | None,
    event: CaseEvent,
    clock: Clock,
    policy: Policy,
) -> None:
    """ "Assigned to you" on the channels the new owner chose, once per reassignment (the id derives from its
    history entry); nobody is told what they gave themselves."""
    if actor is not None and actor.strip().lower() == owner.lower():
        return
    first = min(tasks, key=lambda task: task.due_at) if tasks else None
    await recipients.tell(
        session,
        person=await people.find_by_email(session, owner),
        kind=messages.ASSIGNED,
        key=f"reassigned|{event.id}",
        policy=policy,
        clock=clock,
        case=case,
        reason=f"Given to you by {actor}" if actor else "Given to you",
        task_id=first.id if first else None,
        title=first.title if first else "",
        due_at=first.due_at.isoformat() if first else None,
        tasks=[{"title": task.title, "due_at": task.due_at.isoformat()} for task in tasks],
    )


async def snooze_task(
    session: AsyncSession, task_id: str, *, until: datetime, reason: str, actor: str | None, clock: Clock
) -> Task:
    """Put an open task off until a moment, with a reason; its escalation and reminders wait as long."""
    now = clock.now()
    if until.tzinfo is None:
        raise ActionRefused("the snooze time needs a time zone")
    if until <= now:
        raise ActionRefused("snooze to a moment in the future")
    if until > now + LONGEST_SNOOZE:
        raise ActionRefused("a task is snoozed for at most a year")
    task = await _open_task(session, task_id)
    if until <= task.due_at:
        raise ActionRefused(f"the task is not due until {task.due_at.isoformat()}: snooze it past that")
    case = await _open_case(session, task.case_id)
    waited = until - task.due_at
    for timer in await repository.pending_task_timers(session, task.id):
        timer.due_at += waited
    before = task.due_at
    task.due_at, task.snoozed_until, task.snooze_reason = until, until, reason
    case.updated_at = now
    record(
        session,
        case,
        "task_snoozed",
        at=now,
        actor=actor,
        task_id=task.id,
        until=until.isoformat(),
        was_due=before.isoformat(),
        reason=reason,
    )
    await session.flush()
    return task


async def add_note(session: AsyncSession, case_id: str, *, text: str, actor: str | None, clock: Clock) -> Case:
    """Write a note in the case's history (closed cases take notes too: what was learnt later)."""
    case = await repository.case_with_history(session, case_id, lock=True)
    if case is None:
        raise CaseNotFound(case_id)
    text = text.strip()
    if not text:
        raise ActionRefused("a note needs some text")
    case.updated_at = clock.now()
    record(session, case, "note_added", at=clock.now(), actor=actor, text=text)
    await session.flush()
    return case


async def change_playbook(
    session: AsyncSession,
    case_id: str,
    *,
    playbook: str,
    reason: str | None,
    actor: str | None,
    clock: Clock,
    policy: Policy,
) -> Case:
    """Work another playbook by hand (the diagnosis may switch it again when it changes its mind)."""
    case = await _open_case(session, case_id)
    chosen = policy.playbooks.get(playbook)
    if chosen is None:
        raise ActionRefused(f"no playbook is called {playbook!r} (there are {', '.join(sorted(policy.playbooks))})")
    if chosen.name == case.playbook:
        raise ActionRefused(f"the case already works the {playbook} playbook")
    await switch_playbook(
        session,
        case,
        chosen,
        policy=policy,
        clock=clock,
        avoid=list(case.diagnosis.get("avoid") or []),
        actor=actor,
        reason=reason,
    )
    return case
