"""Turning playbook steps and ladder rungs into tasks with owners, due times and escalation timers."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.history import record
from services.outreach.ladder import REPEATABLE_ACTIONS, intervention_key, was_tried
from services.outreach.models import Case, Task
from services.outreach.playbooks import Playbook, Step
from services.outreach.timing import Timing
from shared.ids import new_id


class NewTask(NamedTuple):
    """A task just added, as its owner is told of it."""

    id: str
    owner: str
    title: str
    due_at: datetime


def may_skip(playbook: Playbook) -> bool:
    """Whether anything tried before could skip a step: calls and emails are never skipped."""
    return any(intervention_key(step.action, step.offer) not in REPEATABLE_ACTIONS for step in playbook.steps)


async def recently_tried(session: AsyncSession, *, account_id: str, since: datetime, extra: list[str]) -> set[str]:
    """Interventions done for the account since ``since`` (any case), plus those the diagnosis says to avoid."""
    done = await repository.done_for_account(session, account_id=account_id, since=since)
    return {intervention_key(action, offer) for action, offer in done} | set(extra)


def add_timer(
    session: AsyncSession,
    *,
    case: Case,
    task: Task | NewTask | None,
    kind: str,
    due_at: datetime,
    now: datetime,
    step: int | None = None,
) -> None:
    """A timer of ``kind`` (expire, climb, nudge at inaction ``step``, due_soon) firing at ``due_at``."""
    repository.add_timer_row(
        session,
        {
            "id": new_id(),
            "case_id": case.id,
            "task_id": task.id if task else None,
            "kind": kind,
            "step": step,
            "due_at": due_at,
            "created_at": now,
            "fired_at": None,
            "cancelled_at": None,
            "outcome": None,
        },
    )


def add_task(
    session: AsyncSession,
    case: Case,
    *,
    kind: str,
    action: str,
    title: str,
    owner_role: str,
    owner: str,
    position: int,
    due_at: datetime,
    now: datetime,
    timing: Timing,
    offer: str | None = None,
    playbook: str | None = None,
    rung: str | None = None,
) -> NewTask:
    """A task for ``owner``, with its timers: the owner is told before it is due, and our inaction ladder starts
    at its due time if it is still open then. Written with the session's next flush, its timers after it.
    """
    task = NewTask(id=new_id(), owner=owner, title=title, due_at=due_at)
    repository.add_task_row(
        session,
        {
            "id": task.id,
            "case_id": case.id,
            "position": position,
            "kind": kind,
            "action": action,
            "offer": offer,
            "title": title,
            "playbook": playbook,
            "rung": rung,
            "owner_role": owner_role,
            "owner": owner,
            "status": "open",
            "due_at": due_at,
            "escalate_after_seconds": None,
            "result": None,
            "note": None,
            "completed_by": None,
            "created_at": now,
            "completed_at": None,
        },
    )
    nudge_at = timing.first_nudge(due_at, owner)
    if nudge_at is not None:
        add_timer(session, case=case, task=task, kind="nudge", due_at=nudge_at, now=now, step=0)
    notice_at = timing.due_soon_notice(due_at, now, owner)
    if notice_at is not None:
        add_timer(session, case=case, task=task, kind="due_soon", due_at=notice_at, now=now)
    return task


def steps_to_work(
    session: AsyncSession, case: Case, playbook: Playbook, *, now: datetime, tried: set[str], done_here: set[str]
) -> list[Step]:
    """The playbook's steps minus those done on this case or tried recently for the account (each skip recorded)."""
    steps = []
    for step in playbook.steps:
        key = intervention_key(step.action, step.offer)
        if key in done_here and key not in REPEATABLE_ACTIONS:
            record(session, case, "step_skipped", at=now, step=step.title, action=key, reason="done_on_this_case")
            continue
        # ``tried`` also holds the moves diagnosis says failed before (its ``avoid``), in the shared vocabulary.
        if was_tried(key, tried) or (key not in REPEATABLE_ACTIONS and step.move in tried):
            record(session, case, "step_skipped", at=now, step=step.title, action=key, reason="tried_recently")
            continue
        steps.append(step)
    return steps


def add_playbook_steps(
    session: AsyncSession,
    case: Case,
    playbook: Playbook,
    steps: list[Step],
    *,
    owners: list[str],
    position: int,
    now: datetime,
    timing: Timing,
) -> list[NewTask]:
    """Tasks for ``steps`` (with their ``owners``), numbered from ``position`` on, due in each owner's hours."""
    return [
        add_task(
            session,
            case,
            kind="closing" if step.action == "closing" else "step",
            action=step.action,
            offer=step.offer,
            title=step.title,
            owner_role=step.owner_role,
            owner=owner,
            position=position + index,
            due_at=timing.due(now, step.due_after, owner),
            now=now,
            timing=timing,
            playbook=playbook.name,
        )
        for index, (step, owner) in enumerate(zip(steps, owners, strict=True))
    ]


async def cancel_open_work(
    session: AsyncSession,
    case: Case,
    *,
    now: datetime,
    reason: str,
    kinds: tuple[str, ...] = ("step", "escalation", "closing"),
) -> int:
    """Cancel the case's open tasks of the given kinds and their pending timers; returns the tasks cancelled."""
    return await repository.cancel_open_tasks(session, case.id, kinds=kinds, now=now, reason=reason)
