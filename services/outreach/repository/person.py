"""People: who they are, how they want to be told, their daily digest, who routing may choose."""

from __future__ import annotations

from datetime import date

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import Person
from shared.db import rows_matched


async def people_by_email(session: AsyncSession, emails: set[str]) -> dict[str, Person]:
    """The people named by these emails (as tasks and cases name owners), by email."""
    wanted = {email.lower() for email in emails if email}
    if not wanted:
        return {}
    rows = await session.execute(select(Person).where(Person.email.in_(wanted)))
    return {person.email: person for person in rows.scalars()}


async def set_notification_choice(session: AsyncSession, email: str, *, channels: str, daily_digest: bool) -> bool:
    """Record how a person wants to be told; False when nobody has that email."""
    result = await session.execute(
        update(Person)
        .where(Person.email == email.strip().lower())
        .values(notify_channels=channels, daily_digest=daily_digest)
    )
    return rows_matched(result) == 1


async def people_wanting_a_digest(session: AsyncSession) -> list[Person]:
    """Active people who asked for the daily digest."""
    query = select(Person).where(Person.active.is_(True), Person.daily_digest.is_(True)).order_by(Person.email)
    return list((await session.execute(query)).scalars())


async def claim_digest_day(session: AsyncSession, person_id: str, day: date) -> bool:
    """Mark ``day``'s digest as this instance's to send; False when it was claimed already (by any instance)."""
    result = await session.execute(
        update(Person)
        .where(Person.id == person_id, or_(Person.last_digest_on.is_(None), Person.last_digest_on < day))
        .values(last_digest_on=day)
    )
    return rows_matched(result) == 1


async def person_by_id(session: AsyncSession, person_id: str) -> Person | None:
    return await session.get(Person, person_id)


async def person_by_email(session: AsyncSession, email: str) -> Person | None:
    return await session.scalar(select(Person).where(Person.email == email))


async def people(
    session: AsyncSession, *, role: str | None = None, active_only: bool = False, managed_by: list[str] | None = None
) -> list[Person]:
    """People (with a role, active, reporting to one of ``managed_by``), active first, then by name and email."""
    query = select(Person).order_by(Person.active.desc(), Person.name, Person.email)
    if role is not None:
        query = query.where(Person.role == role)
    if active_only:
        query = query.where(Person.active.is_(True))
    if managed_by is not None:
        query = query.where(Person.manager_id.in_(managed_by))
    return list((await session.execute(query)).scalars())


_EVERYONE = select(Person)


async def people_for_routing(session: AsyncSession) -> list[Person]:
    """Everyone, active or not: routing decides in Python (teams are small), and the people it picks are told."""
    return list((await session.execute(_EVERYONE)).scalars())


async def names_by_email(session: AsyncSession, emails: set[str]) -> dict[str, str]:
    rows = await session.execute(select(Person.email, Person.name).where(Person.email.in_(emails)))
    return dict(rows.all())


async def anyone_set_up(session: AsyncSession) -> bool:
    return await session.scalar(select(Person.id).limit(1)) is not None
