"""Who owns a task: the account owner when known, else the next person in the role's stored rotation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import RotationCursor
from services.outreach.rotation import take_turn
from shared.db import insert_ignoring_conflicts, is_postgres


async def lock_rotations(session: AsyncSession, *, roles: set[str]) -> None:
    """Take the cursors a use case will need up front and in one order, so concurrent writers never deadlock."""
    for role in sorted(roles):
        await session.execute(insert_ignoring_conflicts(session, RotationCursor.__table__, role=role, position=0))
    if is_postgres(session) and roles:
        await session.execute(select(RotationCursor.role).where(RotationCursor.role.in_(sorted(roles)))
                              .order_by(RotationCursor.role).with_for_update())


async def next_in_rotation(session: AsyncSession, *, role: str, people: list[str]) -> str:
    """Round-robin over ``people``; the cursor is a locked row, so turns survive restarts and instances."""
    await session.execute(insert_ignoring_conflicts(session, RotationCursor.__table__, role=role, position=0))
    query = select(RotationCursor).where(RotationCursor.role == role).execution_options(populate_existing=True)
    if is_postgres(session):
        query = query.with_for_update()
    cursor = (await session.execute(query)).scalar_one()
    person, cursor.position = take_turn(people, cursor.position)
    await session.flush()
    return person


async def owner_for(session: AsyncSession, *, role: str, case_owner: str | None,
                    rotations: dict[str, list[str]]) -> str:
    """The CSM role goes to the case's owner; other roles (and owner-less cases) take turns."""
    if role == "csm" and case_owner:
        return case_owner
    return await next_in_rotation(session, role=role, people=rotations[role])
