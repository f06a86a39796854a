"""Who is told and in which time zone: the people behind task owners, for due times and personal notifications."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import messages, repository
from services.outreach.clock import Clock
from services.outreach.models import Case, Person, Task
from services.outreach.notifications import PERSONAL_CHANNELS, Recipient, enqueue_personal
from services.outreach.people import managers_above
from services.outreach.policy import Policy
from services.outreach.steps import NewTask
from services.outreach.timing import Timing
from services.outreach.working_hours import zone_named


def recipient(person: Person | None) -> Recipient | None:
    """How to reach an active person on the channels they chose; None for someone not set up or deactivated."""
    if person is None or not person.active:
        return None
    chosen = tuple(channel for channel in (person.notify_channels or "").split(",") if channel in PERSONAL_CHANNELS)
    return Recipient(
        email=person.email,
        name=person.name,
        time_zone=person.time_zone,
        slack_user_id=person.slack_user_id,
        channels=chosen,
    )


async def staff(session: AsyncSession, owners: set[str | None]) -> dict[str, Person]:
    """The people behind these owners (emails), by email; owners who are not people are left out."""
    return await repository.people_by_email(session, {owner for owner in owners if owner})


def timing(policy: Policy, playbook: str | None, people: dict[str, Person]) -> Timing:
    """How tasks on ``playbook`` are timed for these people: their hours, the ladder, each one's time zone."""
    return Timing(
        hours=policy.hours_for(playbook),
        ladder=policy.ladder_for(playbook),
        default_zone=policy.time_zone,
        due_soon=policy.due_soon,
        zones={email: zone_named(person.time_zone, default=policy.time_zone) for email, person in people.items()},
    )


async def timing_for(session: AsyncSession, *, policy: Policy, playbook: str | None, owners: set[str]) -> Timing:
    """``timing`` for these owners, looked up once."""
    return timing(policy, playbook, await staff(session, set(owners)))


async def tell(
    session: AsyncSession,
    *,
    person: Person | None,
    kind: str,
    key: str,
    policy: Policy,
    clock: Clock,
    case: Case | None = None,
    **detail: Any,
) -> bool:
    """Queue a personal notification for ``person`` on the channels they chose; False when they cannot be told."""
    to = recipient(person)
    if to is None or not to.channels:
        return False
    await enqueue_personal(
        session, kind=kind, to=to, key=key, channels=policy.channels, clock=clock, case=case, **detail
    )
    return True


async def manager_of_owner(session: AsyncSession, owner: str | None) -> Person | None:
    """The task owner's nearest active manager."""
    person = (await staff(session, {owner})).get((owner or "").lower())
    if person is None:
        return None
    return next((boss for boss in await managers_above(session, person) if boss.active), None)


async def tell_assigned(
    session: AsyncSession,
    case: Case,
    tasks: Sequence[Task | NewTask],
    *,
    people: dict[str, Person],
    policy: Policy,
    clock: Clock,
) -> None:
    """Tell each owner, once per case and batch of tasks, what became theirs."""
    by_owner: dict[str, list[Task | NewTask]] = {}
    for task in tasks:
        by_owner.setdefault(task.owner or "", []).append(task)
    for owner, theirs in by_owner.items():
        first = theirs[0]
        await tell(
            session,
            person=people.get(owner.lower()),
            kind=messages.ASSIGNED,
            key=f"assigned|{first.id}",
            policy=policy,
            clock=clock,
            case=case,
            task_id=first.id,
            title=first.title,
            due_at=first.due_at.isoformat(),
            tasks=[{"title": task.title, "due_at": task.due_at.isoformat()} for task in theirs],
        )


async def choose_notifications(
    session: AsyncSession, email: str, *, channels: Sequence[str], daily_digest: bool
) -> bool:
    """Record a person's channels (an empty list: nothing personal) and digest; False when nobody has the email."""
    return await repository.set_notification_choice(
        session, email, channels=",".join(channels), daily_digest=daily_digest
    )
