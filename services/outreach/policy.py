"""How outreach works a case, as configured: playbooks, rotations, thresholds, channels. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo

from services.outreach.ladder_file import DEFAULT, Ladder, ladder_for, load_ladders
from services.outreach.playbooks import Playbook
from services.outreach.working_hours import Hours, WorkingHours, hours_for


@dataclass(frozen=True)
class Policy:
    playbooks: dict[str, Playbook]
    rotations: dict[str, list[str]]
    high_value_mrr_minor: int = 100_000
    tried_window: timedelta = timedelta(days=90)
    save_verify: timedelta = timedelta(days=30)
    high_priority: int = 70
    channels: tuple[str, ...] = ()
    ladders: dict[str, Ladder] = field(default_factory=load_ladders)
    working_hours: WorkingHours = field(default_factory=WorkingHours)
    time_zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    due_soon: timedelta = timedelta(hours=2)

    def ladder_for(self, playbook: str | None) -> Ladder:
        """The escalation ladders a case on ``playbook`` climbs."""
        return ladder_for(self.ladders, playbook)

    def hours_for(self, playbook: str | None) -> Hours:
        """Working hours, unless the playbook counts calendar hours."""
        found = self.playbooks.get(playbook or DEFAULT)
        return hours_for(found.hours if found else "working", self.working_hours)
