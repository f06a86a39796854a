"""Desk sessions and sign-in failures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import DeskSession, Person, SignInFailure
from shared.db import rows_matched


async def end_desk_sessions(session: AsyncSession, *, person_id: str | None = None, id_hash: str | None = None) -> int:
    """Delete a person's sessions, or one session; returns how many."""
    query = delete(DeskSession)
    query = (
        query.where(DeskSession.person_id == person_id) if person_id else query.where(DeskSession.id_hash == id_hash)
    )
    return rows_matched(await session.execute(query))


async def end_expired_desk_sessions(session: AsyncSession, *, now: datetime) -> None:
    await session.execute(delete(DeskSession).where(DeskSession.expires_at <= now))


async def live_desk_session(session: AsyncSession, id_hash: str, *, now: datetime) -> Row[DeskSession, Person] | None:
    """The session and its person, while the session has not expired and the person is active."""
    return (
        await session.execute(
            select(DeskSession, Person)
            .join(Person, Person.id == DeskSession.person_id)
            .where(DeskSession.id_hash == id_hash, DeskSession.expires_at > now, Person.active.is_(True))
        )
    ).one_or_none()


async def sign_in_failures(
    session: AsyncSession, *, email: str, address: str, since: datetime
) -> Row[int, datetime | None, int, datetime | None]:
    """Failures since ``since`` for the email and for the address: (count, oldest) for each."""
    return (
        await session.execute(
            select(
                func.count().filter(SignInFailure.email == email),
                func.min(SignInFailure.at).filter(SignInFailure.email == email),
                func.count().filter(SignInFailure.address == address),
                func.min(SignInFailure.at).filter(SignInFailure.address == address),
            ).where(SignInFailure.at > since, or_(SignInFailure.email == email, SignInFailure.address == address))
        )
    ).one()


async def forget_sign_in_failures(session: AsyncSession, *, before: datetime) -> None:
    await session.execute(delete(SignInFailure).where(SignInFailure.at < before))
