"""The desk's case list: cases in priority order with the filters and search customer success works by, a page
at a time (no ceiling on how many cases exist)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.models import CASE_STATUSES, Case, Task

PAGE_SIZE = 50
# Deep pages are refused rather than overflowing the database's integer: a million cases' worth.
MAX_PAGE = 20_000


def page_number(value: str | int | None) -> int:
    """A page number from a query string: 1 when missing or not a number."""
    try:
        number = int(value or 1)
    except (TypeError, ValueError):
        return 1
    return min(max(number, 1), MAX_PAGE)


@dataclass(frozen=True)
class Paging:
    page: int
    size: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))

    @property
    def first(self) -> int:
        return 0 if self.total == 0 else (self.page - 1) * self.size + 1

    @property
    def last(self) -> int:
        return min(self.page * self.size, self.total)


@dataclass(frozen=True)
class QueueFilters:
    """What the queue is narrowed to; empty means any."""

    status: str = "open"
    owner: str = ""
    root_cause: str = ""
    q: str = ""
    tied: bool = False  # only open cases tied on version, for a person to decide

    @classmethod
    def parse(
        cls,
        *,
        status: str | None,
        owner: str | None,
        root_cause: str | None,
        q: str | None = None,
        tied: str | None = None,
    ) -> QueueFilters:
        """Unknown statuses fall back to open cases rather than an error page."""
        status = status if status in (*CASE_STATUSES, "all") else "open"
        return cls(
            status=status,
            owner=(owner or "").strip()[:255],
            root_cause=(root_cause or "").strip()[:64],
            q=(q or "").strip()[:200],
            tied=tied == "yes",
        )


@dataclass(frozen=True)
class QueueRow:
    case: Case
    next_task: Task | None
    overdue_tasks: int
    days_left: float | None


async def queue(
    session: AsyncSession, *, filters: QueueFilters, now: datetime, page: int = 1
) -> tuple[list[QueueRow], Paging]:
    """A page of cases by priority (which weighs revenue at risk, fit and days left), then revenue, then deadline."""
    cases, total = await repository.cases_by_priority(
        session,
        status=None if filters.status == "all" else filters.status,
        owner=filters.owner or None,
        root_cause=filters.root_cause or None,
        search=filters.q,
        tied=True if filters.tied else None,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
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
    return rows, Paging(page=page, size=PAGE_SIZE, total=total)


async def filter_choices(session: AsyncSession) -> tuple[list[str], list[str]]:
    """Owners and root causes that occur, for the filter menus."""
    return await repository.owners_and_root_causes(session)
