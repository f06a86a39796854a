"""New tasks, timers and timeline entries: staged in the session as plain rows, written as one INSERT per table when
it flushes.

A new case writes two tasks, four timers and its "opened" entry. As ORM objects, building each instrumented object,
cascading it into the session and flushing it through the unit of work cost more than the statements did. Staged
rows are written with one executemany per table right after the ORM's own flush (they refer to cases that flush may
insert), or at the commit when the ORM had nothing to flush. Like an object added to the session, a staged row is
seen by no query before then.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Insert, Table, event, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction

from services.outreach.models import CaseEvent, Task, Timer

TASKS = Task.__table__
TIMERS = Timer.__table__
EVENTS = CaseEvent.__table__
# Written in this order: a timer refers to its task. Timeline entries are numbered in the order they are written.
_INSERTS: dict[Table, Insert] = {TASKS: insert(TASKS), TIMERS: insert(TIMERS), EVENTS: insert(EVENTS)}
_STAGED = "outreach.staged_rows"


def add_task_row(session: AsyncSession, row: dict[str, Any]) -> None:
    """A new task, written with the session's next flush or its commit. Every row names the same columns."""
    _staged(session)[TASKS].append(row)


def add_timer_row(session: AsyncSession, row: dict[str, Any]) -> None:
    """A new timer, written with the session's next flush or its commit. Every row names the same columns."""
    _staged(session)[TIMERS].append(row)


def add_event_row(session: AsyncSession, row: dict[str, Any]) -> None:
    """A new timeline entry, written with the session's next flush or its commit. Every row names the same columns."""
    _staged(session)[EVENTS].append(row)


def _staged(session: AsyncSession) -> dict[Table, list[dict[str, Any]]]:
    staged: dict[Table, list[dict[str, Any]]] | None = session.info.get(_STAGED)
    if staged is None:
        staged = session.info[_STAGED] = {table: [] for table in _INSERTS}
    return staged


def _write(session: Session) -> None:
    staged = session.info.pop(_STAGED, None)
    if staged is None:
        return
    connection = session.connection()
    for table, statement in _INSERTS.items():
        if staged[table]:
            connection.execute(statement, staged[table])


@event.listens_for(Session, "after_flush")
def _write_after_flush(session: Session, _flush: UOWTransaction) -> None:
    _write(session)


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    if _STAGED in session.info:
        session.flush()  # the ORM's rows first (which writes the staged ones after them), if it has any
        _write(session)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, _previous: Any) -> None:
    session.info.pop(_STAGED, None)
