"""Timers: the due ones claimed, fired, rescheduled and cancelled."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.outreach.models import Case, Task, Timer
from shared.db import is_postgres, rows_matched
from shared.ids import new_id

TIMERS = Timer.__table__


# The due timer, its case and its task in one statement; built once, as the aliased task is costly to adapt.
_TIMER_TASK = aliased(Task)
_DUE = (
    select(Timer, Case, _TIMER_TASK)
    .join(Case, Case.id == Timer.case_id)
    .outerjoin(_TIMER_TASK, _TIMER_TASK.id == Timer.task_id)
    .where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
    .order_by(Timer.due_at, Timer.id)
)


async def due_timers(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Row[Timer, Case, Task | None]]:
    """Due timers with their case and task; on PostgreSQL the timer and case locked, rows others hold skipped."""
    query = _DUE.where(Timer.due_at <= now).limit(limit)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=(Timer, Case))
    return (await session.execute(query)).all()


async def claim_timer(session: AsyncSession, timer_id: str, *, now: datetime) -> bool:
    """Mark a pending timer fired; False when another instance fired or cancelled it first."""
    claimed = await session.execute(
        update(TIMERS)
        .where(TIMERS.c.id == timer_id, TIMERS.c.fired_at.is_(None), TIMERS.c.cancelled_at.is_(None))
        .values(fired_at=now)
    )
    return rows_matched(claimed) == 1


async def record_timer_outcome(session: AsyncSession, timer_id: str, outcome: str) -> None:
    """What firing the timer did."""
    await session.execute(update(TIMERS).where(TIMERS.c.id == timer_id).values(outcome=outcome))


async def cancel_case_timers(session: AsyncSession, case_id: str, *, now: datetime, outcome: str) -> None:
    """Cancel every pending timer of the case."""
    await session.execute(
        update(Timer)
        .where(Timer.case_id == case_id, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=now, outcome=outcome)
    )


async def cancel_expiry_timers(session: AsyncSession, case_id: str, *, now: datetime, outcome: str) -> None:
    """Cancel the case's pending expiry timer (its effective date moved)."""
    await session.execute(
        update(Timer)
        .where(Timer.case_id == case_id, Timer.kind == "expire", Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=now, outcome=outcome)
    )


async def cancel_task_timers(session: AsyncSession, task_id: str, *, now: datetime, outcome: str) -> None:
    """Cancel the task's pending escalation timer."""
    await session.execute(
        update(Timer)
        .where(Timer.task_id == task_id, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=now, outcome=outcome)
    )


async def reschedule_timer(session: AsyncSession, timer: Timer, *, due_at: datetime, now: datetime) -> None:
    """The same timer again at a later time: fired now only to find it must wait (a snooze, the previous rung)."""
    session.add(
        Timer(
            id=new_id(),
            case_id=timer.case_id,
            task_id=timer.task_id,
            kind=timer.kind,
            step=timer.step,
            due_at=due_at,
            created_at=now,
            fired_at=None,
            cancelled_at=None,
            outcome=None,
        )
    )


async def cancel_case_timers_of_kind(
    session: AsyncSession, case_id: str, kind: str, *, now: datetime, outcome: str
) -> int:
    """Cancel the case's pending timers of one kind; returns how many."""
    result = await session.execute(
        update(Timer)
        .where(Timer.case_id == case_id, Timer.kind == kind, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=now, outcome=outcome)
    )
    return rows_matched(result)


async def pending_task_timers(session: AsyncSession, task_id: str) -> list[Timer]:
    """The task's timers still to fire (its escalation, its reminders)."""
    query = select(Timer).where(Timer.task_id == task_id, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
    return list((await session.execute(query)).scalars())


async def oldest_late_timer(session: AsyncSession, *, now: datetime) -> datetime | None:
    """Due time of the oldest timer that should have fired by ``now`` and has not."""
    return await session.scalar(
        select(func.min(Timer.due_at)).where(
            Timer.fired_at.is_(None), Timer.cancelled_at.is_(None), Timer.due_at <= now
        )
    )
