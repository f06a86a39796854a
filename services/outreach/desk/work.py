"""My work: the signed-in person's tasks (escalations addressed to them included), overdue first, then by due
time; a manager can also see their team's (everyone below them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import people, repository
from services.outreach.desk.queue import PAGE_SIZE, Paging
from services.outreach.models import Case, Person, Task

SCOPES = ("mine", "team", "both")
SHOWING = ("open", "overdue", "all")
KINDS = ("", "step", "escalation", "closing")


@dataclass(frozen=True)
class WorkFilters:
    scope: str = "mine"
    show: str = "open"
    kind: str = ""
    q: str = ""

    @classmethod
    def parse(
        cls, *, scope: str | None, show: str | None, kind: str | None, q: str | None, has_team: bool
    ) -> WorkFilters:
        """Unknown values fall back to the defaults; a manager's default is their own work and their team's."""
        default_scope = "both" if has_team else "mine"
        return cls(
            scope=scope if scope in SCOPES and has_team else default_scope,
            show=show if show in SHOWING else "open",
            kind=kind if kind in KINDS else "",
            q=(q or "").strip()[:200],
        )


@dataclass(frozen=True)
class WorkRow:
    task: Task
    case: Case
    overdue: bool
    mine: bool


async def my_work(
    session: AsyncSession, *, person: Person, filters: WorkFilters, now: datetime, page: int
) -> tuple[list[WorkRow], Paging, dict[str, str]]:
    """A page of the work, how many rows in all, and the names of the team (email to name)."""
    team = {member.email: member.name for member in await people.team_of(session, person)}
    owners = {
        "mine": [person.email],
        "team": list(team),
        "both": [person.email, *team],
    }[filters.scope]
    rows, total = await repository.work_tasks(
        session,
        owners=owners,
        open_only=filters.show == "open",
        overdue_before=now if filters.show == "overdue" else None,
        kind=filters.kind or None,
        search=filters.q,
        limit=PAGE_SIZE,
        offset=(page - 1) * PAGE_SIZE,
    )
    work = [
        WorkRow(
            task=task, case=case, overdue=task.status == "open" and task.due_at < now, mine=task.owner == person.email
        )
        for task, case in rows
    ]
    return work, Paging(page=page, size=PAGE_SIZE, total=total), team
