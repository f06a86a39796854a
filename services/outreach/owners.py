"""Who owns a task: the account owner when known, else the next person in the role's stored rotation."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import Integer, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.outreach.models import RotationCursor
from services.outreach.rotation import ROLES, take_turns
from shared.db import is_postgres


def _advance_sql(count: int) -> TextClause:
    """The upsert for ``count`` roles, as text: a multi-row insert is compiled afresh on every call otherwise."""
    table = RotationCursor.__tablename__
    rows = ", ".join(f"(:role_{i}, :fresh_{i})" for i in range(count))
    turns = " ".join(f"WHEN :role_{i} THEN :turns_{i}" for i in range(count))
    sizes = " ".join(f"WHEN :role_{i} THEN :size_{i}" for i in range(count))
    # The table name is our own constant and every value a bound parameter.
    return text(
        f"INSERT INTO {table} (role, position) VALUES {rows} ON CONFLICT (role) DO UPDATE "  # noqa: S608
        f"SET position = ({table}.position + CASE excluded.role {turns} END) % CASE excluded.role {sizes} END "
        "RETURNING role, position"
    ).bindparams(*(bindparam(f"{name}_{i}", type_=Integer) for i in range(count) for name in ("turns", "size")))


ADVANCE = [_advance_sql(count) for count in range(len(ROLES) + 1)]


async def next_in_rotations(session: AsyncSession, *, roles: list[str], rotations: dict[str, list[str]]) -> list[str]:
    """One turn per entry of ``roles`` (in order), all in one statement.

    The cursors are stored rows, so turns survive restarts and instances. One upsert creates missing cursors,
    advances the others under their row locks and returns where they now stand; rows are taken in role order,
    so concurrent writers never deadlock.
    """
    turns = Counter(roles)
    if not turns:
        return []
    if any(not rotations[role] for role in turns):
        raise ValueError("a rotation needs at least one person")
    params: dict[str, object] = {}
    for i, role in enumerate(sorted(turns)):
        size = len(rotations[role])
        params |= {f"role_{i}": role, f"fresh_{i}": turns[role] % size, f"turns_{i}": turns[role], f"size_{i}": size}
    statement = ADVANCE[len(turns)] if len(turns) < len(ADVANCE) else _advance_sql(len(turns))
    if is_postgres(session) and isinstance(session.bind, AsyncEngine):
        # Committed at once, in a statement of its own: inside the caller's transaction the cursor rows stayed
        # locked until it committed, so every other transaction opening a case (the next batch of messages,
        # another instance) queued behind it. A turn taken by a transaction that then fails is skipped, which
        # only shifts whose turn comes next. SQLite has one writer at a time, so there it stays inside.
        async with session.bind.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            stored = dict((await autocommit.execute(statement, params)).all())
    else:
        stored = dict((await session.execute(statement, params)).all())
    people = {role: take_turns(rotations[role], stored[role] - count, count) for role, count in turns.items()}
    return [next(people[role]) for role in roles]


async def owners_for(
    session: AsyncSession, *, roles: list[str], case_owner: str | None, rotations: dict[str, list[str]]
) -> list[str]:
    """The owner for each role, in order: the CSM role goes to the case's owner; other roles (and owner-less
    cases) take turns."""
    taking_turns = [role for role in roles if not (role == "csm" and case_owner)]
    people = iter(await next_in_rotations(session, roles=taking_turns, rotations=rotations))
    return [case_owner if role == "csm" and case_owner else next(people) for role in roles]


async def owners_for_new_case(
    session: AsyncSession, *, account_owner: str | None, roles: list[str], rotations: dict[str, list[str]]
) -> tuple[str, list[str]]:
    """The new case's owner (the account owner, else the CSM rotation's next) and each role's owner, in order."""
    if account_owner:
        return account_owner, await owners_for(session, roles=roles, case_owner=account_owner, rotations=rotations)
    # The CSM turn for the case comes first; the case's CSM steps then go to its (non-empty) owner.
    taking_turns = ["csm"] + [role for role in roles if role != "csm"]
    people = iter(await next_in_rotations(session, roles=taking_turns, rotations=rotations))
    owner = next(people)
    return owner, [owner if role == "csm" else next(people) for role in roles]
