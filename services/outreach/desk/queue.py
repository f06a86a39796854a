"""The desk's queue: cases in priority order with the filters customer success works by."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.models import CASE_STATUSES, Case, Task

QUEUE_LIMIT = 200


@dataclass(frozen=True)
class QueueFilters:
    """What the queue is narrowed to; empty means any."""

    status: str = "open"
    owner: str = ""
    root_cause: str = ""

    @classmethod
    def parse(cls, *, status: str | None, owner: str | None, root_cause: str | None) -> QueueFilters:
        """Unknown statuses fall back to open cases rather than an error page."""
        status = status if status in (*CASE_STATUSES, "all") else "open"
        return cls(status=status, owner=(owner or "").strip()[:255], root_cause=(root_cause or "").strip()[:64])


@dataclass(frozen=True)
class QueueRow:
    case: Case
    next_task: Task | None
    overdue_tasks: int
    days_left: float | None


async def queue(session: AsyncSession, *, filters: QueueFilters, now: datetime) -> list[QueueRow]:
    """Cases by priority (which weighs revenue at risk, fit and days left), then revenue, then deadline."""
    cases = await repository.cases_by_priority(
        session,
        status=None if filters.status == "all" else filters.status,
        owner=filters.owner or None,
        root_cause=filters.root_cause or None,
        limit=QUEUE_LIMIT,
    )
    rows = []
    for case in cases:
        open_tasks = sorted((task for task in case.tasks if task.status == "open"), key=lambda task: task.due_at)
        days_left = (case.effective_at - now).total_seconds() / 86400 if case.effective_at else None
        rows.append(
            QueueRow(
                case=case,
                next_task=open_tasks[0] if open_tasks else None,
                overdue_tasks=sum(1 for task in open_tasks if task.due_at < now),
                days_left=days_left,
            )
        )
    return rows


async def filter_choices(session: AsyncSession) -> tuple[list[str], list[str]]:
    """Owners and root causes that occur, for the filter menus."""
    return await repository.owners_and_root_causes(session)
