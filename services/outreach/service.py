"""Outreach's read use cases: cases with their tasks and history. Changes live in cases, tasks, endings, escalation."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.models import Case


async def list_cases(
    session: AsyncSession,
    *,
    status: str | None,
    limit: int,
    offset: int,
    owner: str | None = None,
    account_id: str | None = None,
    tied: bool | None = None,
) -> list[Case]:
    """Cases newest first, with their tasks; ``tied``: only (or no) open cases tied on version."""
    return await repository.cases(
        session, status=status, owner=owner, account_id=account_id, limit=limit, offset=offset, tied=tied
    )


async def get_case(session: AsyncSession, case_id: str, *, lock: bool = False) -> Case | None:
    """One case with its tasks and history."""
    return await repository.case_with_history(session, case_id, lock=lock)


count_by_status = repository.count_cases_by_status
reclaim_counted_changes = repository.reclaim_count_changes
count_overdue = repository.count_overdue_tasks
oldest_late_timer = repository.oldest_late_timer
