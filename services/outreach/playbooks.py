"""Playbooks: the ordered steps worked for a root cause. Plain Python over data files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import yaml

PLAYBOOK_DIR = Path(__file__).parent / "playbooks"


@dataclass(frozen=True)
class Step:
    action: str
    title: str
    owner_role: str
    due_after: timedelta


@dataclass(frozen=True)
class Playbook:
    name: str
    steps: tuple[Step, ...]


def load_playbooks(directory: Path = PLAYBOOK_DIR) -> dict[str, Playbook]:
    """Every ``*.yaml`` playbook in ``directory``, by name."""
    playbooks = {}
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        steps = tuple(
            Step(action=s["action"], title=s["title"], owner_role=s.get("owner_role", "csm"),
                 due_after=timedelta(hours=float(s.get("due_after_hours", 24))))
            for s in data["steps"]
        )
        playbooks[data.get("name", path.stem)] = Playbook(name=data.get("name", path.stem), steps=steps)
    return playbooks
