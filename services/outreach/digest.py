"""The daily digest: each working morning, in their own time zone, a person hears what is due that day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.outreach import messages, repository
from services.outreach.clock import Clock
from services.outreach.policy import Policy
from services.outreach.recipients import tell
from services.outreach.working_hours import zone_named
from shared.db import transaction


async def send_digests(sessions: async_sessionmaker[AsyncSession], *, policy: Policy, clock: Clock) -> int:
    """Queue today's digest for everyone whose working day has begun and who has not had it; returns how many.

    A person's day is claimed by one conditional update, so with several instances each digest is queued once.
    Nothing is sent to someone with nothing due.
    """
    now, hours, queued = clock.now(), policy.working_hours, 0
    async with transaction(sessions) as session:
        people = await repository.people_wanting_a_digest(session)
    for person in people:
        zone = zone_named(person.time_zone, default=policy.time_zone)
        today = now.astimezone(zone).date()
        started = datetime.combine(today, hours.start, tzinfo=zone)
        if not hours.is_working_day(today) or now < started:
            continue
        if person.last_digest_on is not None and person.last_digest_on >= today:
            continue
        async with transaction(sessions) as session:
            if not await repository.claim_digest_day(session, person.id, today):
                continue
            ends = datetime.combine(today, hours.end, tzinfo=zone)
            due = await repository.open_tasks_of(session, person.email, due_before=ends)
            if not due:
                continue
            tasks = [
                {
                    "title": task.title,
                    "due_at": task.due_at.isoformat(),
                    "case_id": case.id,
                    "customer_name": case.customer_name,
                    "account_id": case.account_id,
                }
                for task, case in due
            ]
            told = await tell(
                session,
                person=person,
                kind=messages.DIGEST,
                key=f"digest|{person.email}|{today.isoformat()}",
                policy=policy,
                clock=clock,
                day=today.isoformat(),
                tasks=tasks,
            )
            queued += int(told)
    return queued
