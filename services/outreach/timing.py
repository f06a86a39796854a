"""How a case's tasks are timed: its playbook's hours, its ladder, and each owner's time zone. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from services.outreach.ladder_file import Ladder
from services.outreach.working_hours import Hours


@dataclass(frozen=True)
class Timing:
    hours: Hours
    ladder: Ladder
    default_zone: ZoneInfo
    due_soon: timedelta = timedelta(hours=2)
    zones: dict[str, ZoneInfo] = field(default_factory=dict)

    def zone(self, owner: str | None) -> ZoneInfo:
        """The owner's time zone, or the team's for someone who is not set up as a person."""
        return self.zones.get(owner or "", self.default_zone)

    def due(self, start: datetime, delay: timedelta, owner: str | None) -> datetime:
        """``delay`` after ``start``, counted in the owner's hours: Friday 17:00 plus 2 hours is Monday 11:00."""
        return self.hours.add(start, delay, zone=self.zone(owner))

    def first_nudge(self, due_at: datetime, owner: str | None) -> datetime | None:
        """When an open task's first inaction rung fires, if the ladder has one."""
        if not self.ladder.inaction:
            return None
        return self.due(due_at, self.ladder.inaction[0].delay, owner)

    def due_soon_notice(self, due_at: datetime, now: datetime, owner: str | None) -> datetime | None:
        """When the owner is told the task is due soon (counted back in their hours, so a task due on Monday at
        09:00 is announced on Friday afternoon, not at 07:00); None when that has passed or nobody wants it."""
        if self.due_soon <= timedelta(0):
            return None
        notice = self.hours.before(due_at, self.due_soon, zone=self.zone(owner))
        return notice if notice > now else None
