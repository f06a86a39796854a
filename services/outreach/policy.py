"""How outreach works a case, as configured: playbooks, rotations, thresholds, channels. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.outreach.ladder import LADDER, Rung
from services.outreach.playbooks import Playbook


@dataclass(frozen=True)
class Policy:
    playbooks: dict[str, Playbook]
    rotations: dict[str, list[str]]
    high_value_mrr_minor: int = 100_000
    escalation_after: timedelta = timedelta(hours=48)
    tried_window: timedelta = timedelta(days=90)
    high_priority: int = 70
    channels: tuple[str, ...] = ()
    ladder: tuple[Rung, ...] = field(default=LADDER)
