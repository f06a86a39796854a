"""Diagnosis's queries: cancellations, signals, the history of attempts, diagnosis versions.

The message handlers read and write through Core statements and plain rows, not ORM objects: fewer round trips
and less work per message, and nothing in a session's identity map can go stale when several messages share one
transaction. The statements are built once, with bound parameters: building one costs more than running it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    Text,
    any_,
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
from shared.events import CancellationReceived, Envelope
from shared.outbox import mark_staged, outbox_row

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


def _history_selects(for_accounts: Any) -> list[Any]:
    """Signals and attempts of the accounts ``for_accounts`` picks (a condition on an account id column), as
    selects of one shape: ``row_kind`` tells them apart."""
    no_text = cast(null(), String)
    signals = select(
        literal("signal").label("row_kind"),
        SIGNALS.c.account_id,
        SIGNALS.c.kind.label("name"),
        SIGNALS.c["values"].label("body"),
        SIGNALS.c.signal_version,
        no_text.label("result"),
        no_text.label("playbook"),
        cast(null(), Boolean).label("whole_playbook"),
        cast(null(), UTCDateTime()).label("performed_at"),
        cast(null(), Text).label("note"),
        SIGNALS.c.id,
    ).where(for_accounts(SIGNALS.c.account_id))
    attempts = select(
        literal("attempt"),
        ATTEMPTS.c.account_id,
        ATTEMPTS.c.action,
        cast(null(), JSONType),
        cast(null(), Integer),
        ATTEMPTS.c.result,
        ATTEMPTS.c.playbook,
        ATTEMPTS.c.whole_playbook,
        ATTEMPTS.c.performed_at,
        ATTEMPTS.c.note,
        ATTEMPTS.c.id,
    ).where(for_accounts(ATTEMPTS.c.account_id))
    return [signals, attempts]


def _one_account(account_id: Any) -> Any:
    return account_id == bindparam("account_id")


def _any_account(account_id: Any) -> Any:
    return account_id == any_(bindparam("accounts", type_=postgresql.ARRAY(String)))


def _rows_in(name: str, **columns: Any) -> Any:
    """Rows a statement takes as an array per column, ordered by ``position``: one statement whatever their number
    (one with a parameter per value is prepared anew for each count), and no JSON document to write and parse."""
    return (
        func.unnest(*(bindparam(column, type_=postgresql.ARRAY(type_)) for column, type_ in columns.items()))
        .table_valued(*columns, with_ordinality="position")
        .render_derived(name=name)
    )


# The cancellations' details as JSON text: pydantic writes it several times faster than json.dumps its dump.
_REPORTS = _rows_in("reports", cancellation_id=String, account_id=String, state_version=BigInteger, details=Text)


def _add_cancellations_and_histories_statement() -> Any:
    """On PostgreSQL, the insert-or-ignore of a batch of cancellations and their accounts' histories in one
    statement: the insert is a data-modifying CTE, and an ``added`` row names each cancellation it inserted."""
    added = (
        postgresql.insert(CANCELLATIONS)
        .from_select(
            _CANCELLATION_VALUES,
            select(
                _REPORTS.c.cancellation_id,
                _REPORTS.c.account_id,
                literal("open", String),
                _REPORTS.c.state_version,
                cast(_REPORTS.c.details, postgresql.JSONB),
                bindparam("received_at", type_=UTCDateTime()),
            ).order_by(_REPORTS.c.position),  # ids in arrival order: an account's cancellations are listed by them
        )
        .on_conflict_do_nothing()
        .returning(CANCELLATIONS.c.id, CANCELLATIONS.c.cancellation_id)
        .cte("added")
    )
    no_text = cast(null(), String)
    claimed = select(
        literal("added"),
        no_text,
        added.c.cancellation_id,
        cast(null(), JSONType),
        cast(null(), Integer),
        no_text,
        no_text,
        cast(null(), Boolean),
        cast(null(), UTCDateTime()),
        cast(null(), Text),
        added.c.id,
    )
    return union_all(*_history_selects(_any_account), claimed).order_by("row_kind", "performed_at", "id").add_cte(added)


_CANCELLATION_VALUES = ("cancellation_id", "account_id", "status", "state_version", "details", "received_at")
_HISTORY = union_all(*_history_selects(_one_account)).order_by("row_kind", "performed_at", "id")
_ADD_CANCELLATIONS_AND_HISTORIES = _add_cancellations_and_histories_statement()


def _histories_of(rows: Any) -> tuple[dict[str, AccountHistory], set[str]]:
    """The histories by account in rows of a history statement, and the cancellations its ``added`` rows name."""
    signals: dict[str, dict[str, dict[str, Any]]] = {}
    signal_versions: dict[str, int] = {}
    attempts: dict[str, list[PastAttempt]] = {}
    added = set()
    for row in rows:
        if row.row_kind == "signal":
            signals.setdefault(row.account_id, {})[row.name] = row.body
            signal_versions[row.account_id] = max(signal_versions.get(row.account_id, 0), row.signal_version)
        elif row.row_kind == "attempt":
            attempts.setdefault(row.account_id, []).append(
                PastAttempt(
                    action=row.name,
                    result=row.result,
                    playbook=row.playbook,
                    whole_playbook=row.whole_playbook,
                    note=row.note,
                )
            )
        else:
            added.add(row.name)
    histories = {
        account_id: AccountHistory(
            signals=signals.get(account_id, {}),
            signal_version=signal_versions.get(account_id, 0),
            attempts=attempts.get(account_id, []),
        )
        for account_id in signals.keys() | attempts.keys()
    }
    return histories, added


def _no_history() -> AccountHistory:
    return AccountHistory(signals={}, signal_version=0, attempts=[])


async def account_history(session: AsyncSession, account_id: str) -> AccountHistory:
    """The account's signal groups, its newest signal version (0 when nothing was sent) and its attempts."""
    histories, _ = _histories_of(await session.execute(_HISTORY, {"account_id": account_id}))
    return histories.get(account_id) or _no_history()


@dataclass(frozen=True)
class Claimed:
    """What storing a batch of reports found: the cancellations that were new, and the accounts' histories."""

    new: set[str]
    histories: dict[str, AccountHistory]

    def history(self, account_id: str) -> AccountHistory:
        return self.histories.get(account_id) or _no_history()


async def add_cancellations_and_read_histories(session: AsyncSession, reports: list[CancellationReceived]) -> Claimed:
    """Insert-or-ignore open cancellations (each one once in ``reports``), and read their accounts' histories: one
    round trip on PostgreSQL whatever the number of reports."""
    if not is_postgres(session):  # SQLite has no data-modifying CTEs
        new = set()
        for report in reports:
            if await add_cancellation_if_new(
                session,
                cancellation_id=report.cancellation_id,
                account_id=report.account_id,
                status="open",
                state_version=report.state_version,
                details=report.model_dump(mode="json"),
            ):
                new.add(report.cancellation_id)
        accounts = dict.fromkeys(report.account_id for report in reports)
        return Claimed(new=new, histories={account: await account_history(session, account) for account in accounts})
    rows = await session.execute(
        _ADD_CANCELLATIONS_AND_HISTORIES,
        {
            "cancellation_id": [report.cancellation_id for report in reports],
            "account_id": [report.account_id for report in reports],
            "state_version": [report.state_version for report in reports],
            "details": [report.model_dump_json() for report in reports],
            "accounts": list({report.account_id for report in reports}),
            "received_at": utcnow(),
        },
    )
    histories, new = _histories_of(rows)
    return Claimed(new=new, histories=histories)


async def add_attempt(session: AsyncSession, **values: Any) -> None:
    await session.execute(ATTEMPTS.insert(), values)


_LATEST_VERSION = select(func.max(DIAGNOSES.c.version)).where(DIAGNOSES.c.cancellation_id == bindparam("which"))


async def latest_version(session: AsyncSession, cancellation_id: str) -> int:
    return (await session.execute(_LATEST_VERSION, {"which": cancellation_id})).scalar_one_or_none() or 0


@dataclass(frozen=True)
class NewDiagnosis:
    """A diagnosis version to write, with the event that announces it."""

    envelope: Envelope
    id: str
    cancellation_id: str
    account_id: str
    version: int
    symptom: str
    root_cause: str
    decision: str
    explanation: dict[str, Any]
    created_at: datetime

    def row(self) -> dict[str, Any]:
        return {column.name: getattr(self, column.name) for column in DIAGNOSES.c}


_DIAGNOSED = _rows_in(
    "diagnosed",
    **{c.name: c.type for c in DIAGNOSES.c if c.name not in ("explanation", "created_at")},
    created_at=postgresql.TIMESTAMP(timezone=True),
    event_id=String,
    event_type=String,
    correlation_id=String,
    body=Text,
)
_DIAGNOSED_COLUMNS = [column.name for column in _DIAGNOSED.c if column.name != "position"]


def _add_diagnoses_and_events_statement() -> Any:
    """On PostgreSQL, the diagnosis rows and their outbox rows in one statement (a data-modifying CTE). A diagnosis's
    explanation is its event's payload, read from the event's body: written once, and the same by construction."""
    in_order = _DIAGNOSED.c.position
    diagnosis_values = {c.name: _DIAGNOSED.c[c.name] for c in DIAGNOSES.c if c.name != "explanation"}
    diagnosis_values["explanation"] = cast(_DIAGNOSED.c.body, postgresql.JSONB).op("->", return_type=postgresql.JSONB)(
        "data"
    )
    diagnoses = (
        insert(DIAGNOSES)
        .from_select(list(diagnosis_values), select(*diagnosis_values.values()).order_by(in_order))
        .cte("diagnoses")
    )
    events = ("event_id", "event_type", "correlation_id", "body", "created_at")
    return (
        insert(outbox)
        .from_select(events, select(*(_DIAGNOSED.c[name] for name in events)).order_by(in_order))
        .add_cte(diagnoses)
    )


_ADD_DIAGNOSES_AND_EVENTS = _add_diagnoses_and_events_statement()


async def add_diagnoses_and_events(session: AsyncSession, diagnoses: list[NewDiagnosis]) -> None:
    """Write diagnosis versions and stage their events in the outbox, in order: one round trip on PostgreSQL
    whatever the number, where each diagnosis once cost four (its cancellation, the account's history, the
    diagnosis, the outbox row)."""
    if not diagnoses:
        return
    mark_staged(session)
    if not is_postgres(session):  # SQLite has no data-modifying CTEs
        await session.execute(DIAGNOSES.insert(), [diagnosis.row() for diagnosis in diagnoses])
        await session.execute(outbox.insert(), [outbox_row(diagnosis.envelope) for diagnosis in diagnoses])
        return
    rows = [
        outbox_row(diagnosis.envelope) | diagnosis.row()  # one created_at: the diagnosis's
        for diagnosis in diagnoses
    ]
    await session.execute(_ADD_DIAGNOSES_AND_EVENTS, {name: [row[name] for row in rows] for name in _DIAGNOSED_COLUMNS})


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
