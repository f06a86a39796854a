"""Outreach's read use cases: cases with their tasks and history. Changes live in cases, tasks, endings, escalation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.outreach.models import Case, Task, Timer


async def list_cases(
    session: AsyncSession,
    *,
    status: str | None,
    limit: int,
    offset: int,
    owner: str | None = None,
    account_id: str | None = None,
) -> list[Case]:
    """Cases newest first, with their tasks."""
    query = select(Case).options(selectinload(Case.tasks)).order_by(Case.opened_at.desc(), Case.id)
    if status:
        query = query.where(Case.status == status)
    if owner:
        query = query.where(Case.owner == owner)
    if account_id:
        query = query.where(Case.account_id == account_id)
    return list((await session.execute(query.limit(limit).offset(offset))).scalars())


async def get_case(session: AsyncSession, case_id: str, *, lock: bool = False) -> Case | None:
    """One case with its tasks and history."""
    query = (
        select(Case)
        .options(selectinload(Case.tasks), selectinload(Case.events))
        .where(Case.id == case_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def count_by_status(session: AsyncSession) -> dict[str, int]:
    """Cases per status, for the gauges."""
    rows = await session.execute(select(Case.status, func.count()).group_by(Case.status))
    return dict(rows)


async def count_overdue(session: AsyncSession, *, now: datetime) -> int:
    """Open tasks past their due time."""
    return (
        await session.scalar(select(func.count()).select_from(Task).where(Task.status == "open", Task.due_at < now))
        or 0
    )


async def oldest_late_timer(session: AsyncSession, *, now: datetime) -> datetime | None:
    """Due time of the oldest timer that should have fired by ``now`` and has not."""
    return await session.scalar(
        select(func.min(Timer.due_at)).where(
            Timer.fired_at.is_(None), Timer.cancelled_at.is_(None), Timer.due_at <= now
        )
    )
