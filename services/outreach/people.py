"""People who work the desk: who they are, their role, their manager, where to reach them.

The functions here are how the rest of outreach (routing, escalation, notifications, the desk) looks people
up and changes them. Tasks and cases name their owner by the person's email (lower case); an owner that is
no person's email is a name from a ``BRINK_ROTATION_*`` setting (nobody set up yet). None of these commit.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.models import PERSON_ROLES, Person
from services.outreach.passwords import WeakPassword, hash_password
from shared.ids import new_id

# Deep enough for any real organisation, and a guard against a cycle written straight into the table.
MAX_CHAIN = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class PeopleError(Exception):
    """A change to people that cannot be made; the message says why, for the person who asked."""


class PersonNotFound(PeopleError):
    pass


class EmailTaken(PeopleError):
    pass


class InvalidPerson(PeopleError):
    """A field is not acceptable (bad email, unknown role or time zone, weak password, a manager cycle)."""


def normalise_email(email: str) -> str:
    """The email as stored: trimmed, lower case; InvalidPerson when it is not an address."""
    value = (email or "").strip().lower()
    if len(value) > 320 or not _EMAIL.match(value):
        raise InvalidPerson(f"{email!r} is not an email address")
    return value


def _check_role(role: str) -> str:
    if role not in PERSON_ROLES:
        raise InvalidPerson(f"role must be one of {', '.join(PERSON_ROLES)}, not {role!r}")
    return role


def _check_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPerson(f"{name!r} is not a time zone name (such as Europe/Paris or UTC)") from None
    return name


def _optional_text(value: str | None, *, field: str, limit: int) -> str | None:
    value = (value or "").strip() or None
    if value is not None and len(value) > limit:
        raise InvalidPerson(f"{field} has at most {limit} characters")
    return value


def _required_text(value: str | None, *, field: str, limit: int) -> str:
    checked = _optional_text(value, field=field, limit=limit)
    if checked is None:
        raise InvalidPerson(f"{field} is required")
    return checked


def _hashed(password: str | None) -> str | None:
    if password is None:
        return None
    try:
        return hash_password(password)
    except WeakPassword as error:
        raise InvalidPerson(str(error)) from None


async def get_person(session: AsyncSession, person_id: str) -> Person | None:
    """A person by id, active or not."""
    return await repository.person_by_id(session, person_id)


async def find_by_email(session: AsyncSession, email: str | None) -> Person | None:
    """A person by email (any case), active or not; None for an unknown or malformed email."""
    if not email:
        return None
    return await repository.person_by_email(session, email.strip().lower())


async def names_by_email(session: AsyncSession, emails: set[str]) -> dict[str, str]:
    """The names of the people among ``emails`` (others, such as rotation names, are left out)."""
    wanted = {email for email in emails if email}
    return await repository.names_by_email(session, wanted) if wanted else {}


async def people_with_role(session: AsyncSession, role: str, *, active_only: bool = True) -> list[Person]:
    """Everyone with a role, by email (the order round-robin takes turns in)."""
    found = await repository.people(session, role=role, active_only=active_only)
    return sorted(found, key=lambda person: person.email)


async def list_people(session: AsyncSession, *, include_inactive: bool = True) -> list[Person]:
    """Everyone, active first, then by name."""
    return await repository.people(session, active_only=not include_inactive)


async def manager_of(session: AsyncSession, person: Person) -> Person | None:
    """The person's manager, if any (active or not)."""
    return await repository.person_by_id(session, person.manager_id) if person.manager_id else None


async def managers_above(session: AsyncSession, person: Person) -> list[Person]:
    """The chain of managers above a person, nearest first."""
    chain: list[Person] = []
    seen = {person.id}
    current = person
    while current.manager_id and current.manager_id not in seen and len(chain) < MAX_CHAIN:
        manager = await repository.person_by_id(session, current.manager_id)
        if manager is None:
            break
        chain.append(manager)
        seen.add(manager.id)
        current = manager
    return chain


async def team_of(session: AsyncSession, manager: Person) -> list[Person]:
    """Everyone who reports to ``manager``, directly or through others (not the manager), active or not."""
    team: list[Person] = []
    seen = {manager.id}
    frontier = [manager.id]
    for _ in range(MAX_CHAIN):
        if not frontier:
            break
        reports = [person for person in await repository.people(session, managed_by=frontier) if person.id not in seen]
        team.extend(reports)
        seen.update(person.id for person in reports)
        frontier = [person.id for person in reports]
    return team


async def _manager_id(session: AsyncSession, person: Person | None, manager_email: str | None) -> str | None:
    if not manager_email:
        return None
    manager = await find_by_email(session, manager_email)
    if manager is None:
        raise InvalidPerson(f"no person has the email {manager_email!r} (the manager must be added first)")
    if person is not None and (
        manager.id == person.id or person.id in {above.id for above in await managers_above(session, manager)}
    ):
        raise InvalidPerson(f"{manager.email} reports to {person.email}, so cannot be their manager")
    return manager.id


async def add_person(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    role: str,
    now: datetime,
    manager_email: str | None = None,
    slack_user_id: str | None = None,
    time_zone: str = "UTC",
    password: str | None = None,
) -> Person:
    """A new, active person; without a password they can only sign in through single sign-on."""
    email = normalise_email(email)
    if await find_by_email(session, email) is not None:
        raise EmailTaken(f"{email} is already a person")
    person = Person(
        id=new_id(),
        email=email,
        name=_required_text(name, field="name", limit=255),
        role=_check_role(role),
        manager_id=await _manager_id(session, None, manager_email),
        slack_user_id=_optional_text(slack_user_id, field="Slack user id", limit=32),
        time_zone=_check_time_zone(time_zone or "UTC"),
        active=True,
        password_hash=_hashed(password),
        created_at=now,
        updated_at=now,
        deactivated_at=None,
    )
    session.add(person)
    await session.flush()
    return person


async def update_person(
    session: AsyncSession,
    person: Person,
    *,
    now: datetime,
    name: str | None = None,
    role: str | None = None,
    manager_email: str | None = None,
    slack_user_id: str | None = None,
    time_zone: str | None = None,
) -> Person:
    """Change what is given; ``manager_email=""`` removes the manager, ``None`` leaves it."""
    if name is not None:
        person.name = _required_text(name, field="name", limit=255)
    if role is not None:
        person.role = _check_role(role)
    if manager_email is not None:
        person.manager_id = await _manager_id(session, person, manager_email)
    if slack_user_id is not None:
        person.slack_user_id = _optional_text(slack_user_id, field="Slack user id", limit=32)
    if time_zone is not None:
        person.time_zone = _check_time_zone(time_zone)
    person.updated_at = now
    await session.flush()
    return person


async def end_sessions(session: AsyncSession, person: Person) -> int:
    """Sign the person out everywhere, at once; the number of sessions ended."""
    return await repository.end_desk_sessions(session, person_id=person.id)


async def deactivate(session: AsyncSession, person: Person, *, now: datetime) -> int:
    """The person can no longer sign in, and every open session of theirs ends now; sessions ended."""
    person.active, person.deactivated_at, person.updated_at = False, now, now
    ended = await end_sessions(session, person)
    await session.flush()
    return ended


async def reactivate(session: AsyncSession, person: Person, *, now: datetime) -> None:
    """The person may sign in again."""
    person.active, person.deactivated_at, person.updated_at = True, None, now
    await session.flush()


async def set_password(session: AsyncSession, person: Person, password: str, *, now: datetime) -> int:
    """A new password; sessions opened with the old one end. Returns how many ended."""
    person.password_hash = _hashed(password)
    person.updated_at = now
    ended = await end_sessions(session, person)
    await session.flush()
    return ended


async def anyone_set_up(session: AsyncSession) -> bool:
    """Whether any person exists (a fresh installation has none)."""
    return await repository.anyone_set_up(session)
