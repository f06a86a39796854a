"""Diagnosis's queries: cancellations, signals, the history of attempts, diagnosis versions.

The message handlers read and write through Core statements and plain rows, not ORM objects: fewer round trips
and less work per message, and nothing in a session's identity map can go stale when several messages share one
transaction. The statements are built once, with bound parameters: building one costs more than running it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Integer,
    String,
    Text,
    bindparam,
    case,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis.models import AccountSignal, Attempt, Cancellation, ConfirmedCase, Diagnosis, outbox
from services.diagnosis.verdict import Attempt as PastAttempt
from shared.db import JSONType, UTCDateTime, insert_ignoring_conflicts, is_postgres, utcnow
from shared.events import Envelope
from shared.outbox import add_to_outbox, outbox_row

CANCELLATIONS = Cancellation.__table__
DIAGNOSES = Diagnosis.__table__
ATTEMPTS = Attempt.__table__
SIGNALS = AccountSignal.__table__


@dataclass(frozen=True)
class StoredCancellation:
    """What a diagnosis needs of a stored cancellation."""

    cancellation_id: str
    status: str
    details: dict[str, Any]
    latest_version: int = 0
    seen_signal_version: int = 0


@dataclass(frozen=True)
class AccountHistory:
    """Everything stored about an account that a diagnosis weighs: signal groups and attempts, oldest first."""

    signals: dict[str, dict[str, Any]]
    signal_version: int
    attempts: list[PastAttempt]


_ADD_CANCELLATION = {
    dialect: builder(CANCELLATIONS).on_conflict_do_nothing().returning(CANCELLATIONS.c.id)
    for dialect, builder in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


async def add_cancellation_if_new(
    session: AsyncSession,
    *,
    cancellation_id: str,
    account_id: str,
    status: str,
    state_version: int,
    details: dict[str, Any],
) -> bool:
    """Insert-or-ignore, so two reports of one cancellation handled at once never collide on the unique key."""
    statement = _ADD_CANCELLATION["postgresql" if is_postgres(session) else "sqlite"]
    created = await session.execute(
        statement,
        {
            "cancellation_id": cancellation_id,
            "account_id": account_id,
            "status": status,
            "state_version": state_version,
            "details": details,
            "received_at": utcnow(),
        },
    )
    return created.scalar_one_or_none() is not None


_UPDATE_UNLESS_NEWER_STORED = (
    update(CANCELLATIONS)
    .where(CANCELLATIONS.c.cancellation_id == bindparam("which"), CANCELLATIONS.c.state_version <= bindparam("newest"))
    .returning(CANCELLATIONS.c.id)
)


async def update_unless_newer_stored(
    session: AsyncSession, *, cancellation_id: str, state_version: int, **values: Any
) -> bool:
    """Apply a report unless the stored one is newer (by the source's ordering); True when it was applied."""
    applied = await session.execute(
        _UPDATE_UNLESS_NEWER_STORED,
        dict(which=cancellation_id, newest=state_version, state_version=state_version, **values),
    )
    return applied.scalar_one_or_none() is not None


_LOCKED_CANCELLATION = (
    select(CANCELLATIONS.c.status, CANCELLATIONS.c.details)
    .where(CANCELLATIONS.c.cancellation_id == bindparam("cancellation_id"))
    .with_for_update()
)


async def locked_cancellation(session: AsyncSession, cancellation_id: str) -> StoredCancellation:
    """The stored cancellation, locked so its diagnoses are numbered one after another."""
    row = (await session.execute(_LOCKED_CANCELLATION, {"cancellation_id": cancellation_id})).one()
    return StoredCancellation(cancellation_id=cancellation_id, status=row.status, details=row.details)


_CLOSE_IF_OPEN = (
    update(CANCELLATIONS)
    .where(CANCELLATIONS.c.cancellation_id == bindparam("which"), CANCELLATIONS.c.status == "open")
    .values(status="closed")
)


async def close_if_open(session: AsyncSession, cancellation_id: str) -> None:
    await session.execute(_CLOSE_IF_OPEN, {"which": cancellation_id})


def _open_cancellations_statement() -> Any:
    latest = DIAGNOSES.alias("latest")
    newest_version = (
        select(func.max(DIAGNOSES.c.version))
        .where(DIAGNOSES.c.cancellation_id == CANCELLATIONS.c.cancellation_id)
        .scalar_subquery()
    )
    return (
        select(
            CANCELLATIONS.c.cancellation_id,
            CANCELLATIONS.c.details,
            latest.c.version,
            latest.c.explanation["signal_version"].as_integer().label("seen_signal_version"),
        )
        .select_from(
            CANCELLATIONS.outerjoin(
                latest,
                (latest.c.cancellation_id == CANCELLATIONS.c.cancellation_id) & (latest.c.version == newest_version),
            )
        )
        .where(CANCELLATIONS.c.account_id == bindparam("account_id"), CANCELLATIONS.c.status == "open")
        .order_by(CANCELLATIONS.c.id)
    )


_OPEN_CANCELLATIONS = _open_cancellations_statement()


async def open_cancellations(session: AsyncSession, account_id: str) -> list[StoredCancellation]:
    """The account's cancellations still worth diagnosing (not withdrawn, not closed), each with its latest
    diagnosis version and the signal version that diagnosis saw (0 when none)."""
    return [
        StoredCancellation(
            cancellation_id=row.cancellation_id,
            status="open",
            details=row.details,
            latest_version=row.version or 0,
            seen_signal_version=row.seen_signal_version or 0,
        )
        for row in await session.execute(_OPEN_CANCELLATIONS, {"account_id": account_id})
    ]


async def has_open_cancellation(session: AsyncSession, account_id: str) -> bool:
    return bool(
        await session.scalar(
            select(exists().where(CANCELLATIONS.c.account_id == account_id, CANCELLATIONS.c.status == "open"))
        )
    )


async def signal_rows(session: AsyncSession, account_id: str) -> dict[str, AccountSignal]:
    rows = (await session.execute(select(AccountSignal).where(AccountSignal.account_id == account_id))).scalars()
    return {row.kind: row for row in rows}


async def locked_signal_rows(session: AsyncSession, account_id: str, *, kind: str) -> dict[str, AccountSignal]:
    """The account's signal groups, with the ``kind`` group created empty when missing and all of them locked, so
    two requests merging into that group one after the other never lose each other's part."""
    await session.execute(
        insert_ignoring_conflicts(
            session,
            SIGNALS,
            account_id=account_id,
            kind=kind,
            values={},
            observed_at=utcnow(),
            source=kind,
            signal_version=0,
            updated_at=utcnow(),
        )
    )
    rows = await session.execute(select(AccountSignal).where(AccountSignal.account_id == account_id).with_for_update())
    return {row.kind: row for row in rows.scalars()}


def _history_selects() -> list[Any]:
    """Signals and attempts, as selects of one shape: ``row_kind`` tells them apart."""
    no_text = cast(null(), String)
    signals = select(
        literal("signal").label("row_kind"),
        SIGNALS.c.kind.label("name"),
        SIGNALS.c["values"].label("body"),
        SIGNALS.c.signal_version,
        no_text.label("result"),
        no_text.label("playbook"),
        cast(null(), Boolean).label("whole_playbook"),
        cast(null(), UTCDateTime()).label("performed_at"),
        cast(null(), Text).label("note"),
        SIGNALS.c.id,
    ).where(SIGNALS.c.account_id == bindparam("account_id"))
    attempts = select(
        literal("attempt"),
        ATTEMPTS.c.action,
        cast(null(), JSONType),
        cast(null(), Integer),
        ATTEMPTS.c.result,
        ATTEMPTS.c.playbook,
        ATTEMPTS.c.whole_playbook,
        ATTEMPTS.c.performed_at,
        ATTEMPTS.c.note,
        ATTEMPTS.c.id,
    ).where(ATTEMPTS.c.account_id == bindparam("account_id"))
    return [signals, attempts]


_CANCELLATION_VALUES = ("cancellation_id", "account_id", "status", "state_version", "details", "received_at")


def _add_cancellation_and_history_statement() -> Any:
    """On PostgreSQL, the insert-or-ignore of a cancellation and its account's history in one statement: the
    insert is a data-modifying CTE, and an ``added`` row says it inserted."""
    added = (
        postgresql.insert(CANCELLATIONS)
        .values({name: bindparam(name, type_=CANCELLATIONS.c[name].type) for name in _CANCELLATION_VALUES})
        .on_conflict_do_nothing()
        .returning(CANCELLATIONS.c.id)
        .cte("added")
    )
    no_text = cast(null(), String)
    claimed = select(
        literal("added"),
        no_text,
        cast(null(), JSONType),
        cast(null(), Integer),
        no_text,
        no_text,
        cast(null(), Boolean),
        cast(null(), UTCDateTime()),
        cast(null(), Text),
        added.c.id,
    )
    return union_all(*_history_selects(), claimed).order_by("row_kind", "performed_at", "id").add_cte(added)


_HISTORY = union_all(*_history_selects()).order_by("row_kind", "performed_at", "id")
_ADD_CANCELLATION_AND_HISTORY = _add_cancellation_and_history_statement()


def _history_of(rows: Any) -> tuple[AccountHistory, bool]:
    """The history in rows of the history statement, and whether an ``added`` row was among them."""
    signals: dict[str, dict[str, Any]] = {}
    signal_version = 0
    attempts = []
    added = False
    for row in rows:
        if row.row_kind == "signal":
            signals[row.name] = row.body
            signal_version = max(signal_version, row.signal_version)
        elif row.row_kind == "attempt":
            attempts.append(
                PastAttempt(
                    action=row.name,
                    result=row.result,
                    playbook=row.playbook,
                    whole_playbook=row.whole_playbook,
                    note=row.note,
                )
            )
        else:
            added = True
    return AccountHistory(signals=signals, signal_version=signal_version, attempts=attempts), added


async def account_history(session: AsyncSession, account_id: str) -> AccountHistory:
    """The account's signal groups, its newest signal version (0 when nothing was sent) and its attempts."""
    history, _ = _history_of(await session.execute(_HISTORY, {"account_id": account_id}))
    return history


async def add_cancellation_and_read_history(
    session: AsyncSession, *, cancellation_id: str, account_id: str, state_version: int, details: dict[str, Any]
) -> tuple[bool, AccountHistory]:
    """Insert-or-ignore an open cancellation, and read its account's history: one round trip on PostgreSQL.
    True when the cancellation is new."""
    if not is_postgres(session):  # SQLite has no data-modifying CTEs
        added = await add_cancellation_if_new(
            session,
            cancellation_id=cancellation_id,
            account_id=account_id,
            status="open",
            state_version=state_version,
            details=details,
        )
        return added, await account_history(session, account_id)
    rows = await session.execute(
        _ADD_CANCELLATION_AND_HISTORY,
        {
            "cancellation_id": cancellation_id,
            "account_id": account_id,
            "status": "open",
            "state_version": state_version,
            "details": details,
            "received_at": utcnow(),
        },
    )
    history, added = _history_of(rows)
    return added, history


async def add_attempt(session: AsyncSession, **values: Any) -> None:
    await session.execute(ATTEMPTS.insert(), values)


_LATEST_VERSION = select(func.max(DIAGNOSES.c.version)).where(DIAGNOSES.c.cancellation_id == bindparam("which"))


async def latest_version(session: AsyncSession, cancellation_id: str) -> int:
    return (await session.execute(_LATEST_VERSION, {"which": cancellation_id})).scalar_one_or_none() or 0


def _add_diagnosis_and_event_statement() -> Any:
    """On PostgreSQL, the diagnosis row and its outbox row in one statement (a data-modifying CTE)."""
    diagnosis = (
        insert(DIAGNOSES)
        .values({column.name: bindparam(f"diagnosis_{column.name}", type_=column.type) for column in DIAGNOSES.c})
        .cte("diagnosis")
    )
    return (
        insert(outbox)
        .values(
            {
                name: bindparam(name, type_=outbox.c[name].type)
                for name in ("event_id", "event_type", "correlation_id", "body", "created_at")
            }
        )
        .add_cte(diagnosis)
    )


_ADD_DIAGNOSIS_AND_EVENT = _add_diagnosis_and_event_statement()


async def add_diagnosis_and_event(session: AsyncSession, envelope: Envelope, **diagnosis: Any) -> None:
    """Write a diagnosis version and stage its event in the outbox: one round trip on PostgreSQL, where each
    diagnosis cost four (its cancellation, the account's history, the diagnosis, the outbox row)."""
    if is_postgres(session):
        values = {f"diagnosis_{name}": value for name, value in diagnosis.items()}
        await session.execute(_ADD_DIAGNOSIS_AND_EVENT, values | outbox_row(envelope))
    else:  # SQLite has no data-modifying CTEs
        await session.execute(DIAGNOSES.insert(), diagnosis)
        await add_to_outbox(session, outbox, envelope)


async def latest_diagnosis(session: AsyncSession, account_id: str) -> Diagnosis | None:
    return (
        await session.execute(
            select(Diagnosis)
            .where(Diagnosis.account_id == account_id)
            .order_by(Diagnosis.created_at.desc(), Diagnosis.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


CONFIRMED = ConfirmedCase.__table__


async def add_confirmed_case(session: AsyncSession, **values: Any) -> None:
    """Keep a closed case with its confirmed root cause (once: a redelivered close changes nothing)."""
    await session.execute(insert_ignoring_conflicts(session, CONFIRMED, **values))


_CANCELLATION_DETAILS = select(CANCELLATIONS.c.details).where(
    CANCELLATIONS.c.cancellation_id == bindparam("cancellation_id")
)


async def cancellation_details(session: AsyncSession, cancellation_id: str) -> dict[str, Any] | None:
    """The cancellation as intake reported it, or None when diagnosis never saw it."""
    row = (await session.execute(_CANCELLATION_DETAILS, {"cancellation_id": cancellation_id})).first()
    return row.details if row else None


# Saved against lost: a customer who stayed before any touch, or one we moved on from, says nothing of a playbook.
_SAVE_RECORDS = (
    select(
        CONFIRMED.c.confirmed_root_cause,
        CONFIRMED.c.playbook,
        func.sum(case((CONFIRMED.c.outcome == "saved", 1), else_=0)).label("saved"),
        func.count().label("closed"),
    )
    .where(
        CONFIRMED.c.outcome.in_(("saved", "lost")),
        CONFIRMED.c.confirmed_root_cause != "unknown",
        CONFIRMED.c.playbook.is_not(None),
    )
    .group_by(CONFIRMED.c.confirmed_root_cause, CONFIRMED.c.playbook)
)


async def save_records(session: AsyncSession) -> list[Any]:
    """Per confirmed root cause and playbook: the cases saved and the cases closed (saved or lost)."""
    return list(await session.execute(_SAVE_RECORDS))


async def confirmed_cases(session: AsyncSession) -> list[ConfirmedCase]:
    """Every confirmed case, oldest first."""
    return list((await session.execute(select(ConfirmedCase).order_by(ConfirmedCase.id))).scalars())
