"""A case's playbook as a timeline: each task done, due, overdue, escalated or cancelled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.outreach.models import Case, Task


@dataclass(frozen=True)
class Step:
    task: Task
    state: str  # done, overdue, due, escalated, cancelled
    label: str
    escalated_to: str | None = None


def timeline(case: Case, *, now: datetime) -> list[Step]:
    """The tasks in playbook order, with what became of each."""
    climbed = {
        event.detail.get("unanswered_task_id"): event.detail.get("rung")
        for event in case.events
        if event.kind == "escalated"
    }
    steps = []
    for task in sorted(case.tasks, key=lambda task: (task.due_at, task.position)):
        rung = climbed.get(task.id)
        if task.status == "done":
            state, label = "done", "Done"
        elif task.status == "cancelled":
            state, label = "cancelled", "Cancelled"
        elif rung is not None:
            state, label = "escalated", "Escalated"
        elif task.due_at < now:
            state, label = "overdue", "Overdue"
        else:
            state, label = "due", "Due"
        steps.append(Step(task=task, state=state, label=label, escalated_to=rung))
    return steps
