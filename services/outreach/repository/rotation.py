"""The rotations' cursors: whose turn comes next in each role."""

from __future__ import annotations

from sqlalchemy import Integer, TextClause, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.outreach.models import RotationCursor
from services.outreach.rotation import ROLES
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


_ADVANCE = [_advance_sql(count) for count in range(len(ROLES) + 1)]


async def advance_rotations(session: AsyncSession, *, turns: dict[str, int], sizes: dict[str, int]) -> dict[str, int]:
    """Advance each role's cursor by its turns (modulo its rotation's size); returns where each now stands.

    One upsert creates missing cursors, advances the others under their row locks and returns their positions;
    rows are taken in role order, so concurrent writers never deadlock.
    """
    params: dict[str, object] = {}
    for i, role in enumerate(sorted(turns)):
        size = sizes[role]
        params |= {f"role_{i}": role, f"fresh_{i}": turns[role] % size, f"turns_{i}": turns[role], f"size_{i}": size}
    statement = _ADVANCE[len(turns)] if len(turns) < len(_ADVANCE) else _advance_sql(len(turns))
    if is_postgres(session) and isinstance(session.bind, AsyncEngine):
        # Committed at once, in a statement of its own: inside the caller's transaction the cursor rows stayed
        # locked until it committed, so every other transaction opening a case (the next batch of messages,
        # another instance) queued behind it. A turn taken by a transaction that then fails is skipped, which
        # only shifts whose turn comes next. SQLite has one writer at a time, so there it stays inside.
        async with session.bind.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            return dict((await autocommit.execute(statement, params)).all())
    return dict((await session.execute(statement, params)).all())
