"""Tasks: what was done for an account or on a case, the lists, the desk's work list, cancelling open ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import Case, Task, Timer
from services.outreach.repository.case import DONE_FOR_ACCOUNT, matching_search
from shared.db import rows_matched

CASES = Case.__table__
TASKS = Task.__table__


async def done_for_account(session: AsyncSession, *, account_id: str, since: datetime) -> list[tuple[str, str | None]]:
    """(action, offer) of every task done for the account since ``since``, on any of its cases."""
    rows = await session.execute(DONE_FOR_ACCOUNT, {"account_id": account_id, "since": since})
    return [(action, offer) for action, offer in rows]


async def done_on_case(session: AsyncSession, case_id: str) -> list[tuple[str, str | None]]:
    """(action, offer) of every task done on the case."""
    rows = await session.execute(select(Task.action, Task.offer).where(Task.case_id == case_id, Task.status == "done"))
    return [(action, offer) for action, offer in rows]


async def next_position(session: AsyncSession, case_id: str) -> int:
    """The position after the case's last task."""
    last = await session.scalar(select(func.max(Task.position)).where(Task.case_id == case_id))
    return 0 if last is None else last + 1


async def count_open_tasks(session: AsyncSession, case_id: str) -> int:
    """The case's open tasks."""
    return (
        await session.scalar(
            select(func.count()).select_from(Task).where(Task.case_id == case_id, Task.status == "open")
        )
        or 0
    )


async def open_escalation_tasks(session: AsyncSession, case_id: str) -> list[Task]:
    """The case's open rung tasks (the customer ladder waits while one is neither overdue nor past its snooze)."""
    query = select(Task).where(Task.case_id == case_id, Task.kind == "escalation", Task.status == "open")
    return list((await session.execute(query)).scalars())


async def times_rung_worked(session: AsyncSession, case_id: str, rung: str) -> int:
    """How many tasks the case has had for ``rung`` (a rung that repeats is worked more than once)."""
    query = select(func.count()).select_from(Task).where(Task.case_id == case_id, Task.rung == rung)
    return await session.scalar(query) or 0


async def open_tasks_of(session: AsyncSession, owner: str, *, due_before: datetime) -> list[tuple[Task, Case]]:
    """The owner's open tasks due before ``due_before`` (overdue included), with their cases, by due time."""
    query = (
        select(Task, Case)
        .join(Case, Case.id == Task.case_id)
        .where(Task.owner == owner, Task.status == "open", Task.due_at < due_before)
        .order_by(Task.due_at, Task.id)
        .limit(200)
    )
    return [(task, case) for task, case in (await session.execute(query)).all()]


# The status written out, not bound: only then can the planner use the partial index of open tasks by due time.
_IS_OPEN = text("outreach_tasks.status = 'open'")


async def count_overdue_tasks(session: AsyncSession, *, now: datetime) -> int:
    """Open tasks past their due time."""
    return await session.scalar(select(func.count()).select_from(Task).where(_IS_OPEN, Task.due_at < now)) or 0


async def locked_task(session: AsyncSession, task_id: str) -> Task | None:
    """A task, locked for this transaction, if it exists."""
    return (await session.execute(select(Task).where(Task.id == task_id).with_for_update())).scalar_one_or_none()


async def tasks(
    session: AsyncSession,
    *,
    now: datetime,
    owner: str | None = None,
    status: str | None = None,
    due_before: datetime | None = None,
    due_after: datetime | None = None,
    overdue: bool = False,
    case_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Task]:
    """Tasks by due time, filtered; ``overdue`` means open and due before ``now``."""
    query = select(Task).order_by(Task.due_at, Task.id)
    if owner:
        query = query.where(Task.owner == owner)
    if status:
        query = query.where(Task.status == status)
    if case_id:
        query = query.where(Task.case_id == case_id)
    if due_before:
        query = query.where(Task.due_at < due_before)
    if due_after:
        query = query.where(Task.due_at >= due_after)
    if overdue:
        query = query.where(Task.status == "open", Task.due_at < now)
    return list((await session.execute(query.limit(limit).offset(offset))).scalars())


async def cancel_open_tasks(
    session: AsyncSession, case_id: str, *, kinds: tuple[str, ...], now: datetime, reason: str
) -> int:
    """Cancel the case's open tasks of the given kinds and their pending timers; returns the tasks cancelled."""
    open_tasks = select(Task.id).where(Task.case_id == case_id, Task.status == "open", Task.kind.in_(kinds))
    await session.execute(
        update(Timer)
        .where(
            Timer.case_id == case_id,
            Timer.fired_at.is_(None),
            Timer.cancelled_at.is_(None),
            Timer.task_id.in_(open_tasks),
        )
        .values(cancelled_at=now, outcome=reason)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(Task)
        .where(Task.case_id == case_id, Task.status == "open", Task.kind.in_(kinds))
        .values(status="cancelled", note=reason)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


async def work_tasks(
    session: AsyncSession,
    *,
    owners: list[str],
    open_only: bool,
    overdue_before: datetime | None,
    kind: str | None,
    search: str,
    limit: int,
    offset: int,
) -> tuple[list[Row[Task, Case]], int]:
    """A page of the tasks addressed to ``owners`` with their cases, open ones first, then by due time (so the
    overdue come first); and how many match in all."""
    query = matching_search(
        select(Task, Case).join(Case, Case.id == Task.case_id).where(Task.owner.in_(owners)), search
    )
    if open_only:
        query = query.where(Task.status == "open")
    if overdue_before is not None:
        query = query.where(Task.status == "open", Task.due_at < overdue_before)
    if kind:
        query = query.where(Task.kind == kind)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by((Task.status != "open"), Task.due_at, Task.id).limit(limit).offset(offset)
    return list((await session.execute(page)).all()), total
