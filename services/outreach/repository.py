"""Outreach's queries: cases, tasks, timers, rotations, notifications, the report's rows, people and sessions.

Use cases call these by intent and hold no SQL. Statements on hot paths are built once and run with bound
parameters, as plain Core: building an ORM query (and adapting aliases) each time cost more than running it.
New rows are added to the session as ORM objects by the use cases: the commit then writes all of a batch's
cases, tasks and timers in one INSERT per table.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    BindParameter,
    Integer,
    Row,
    Select,
    TextClause,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased, selectinload

from services.outreach.attempts import CONTACT_RESULTS, INTERNAL_ACTIONS
from services.outreach.models import (
    Case,
    DeskSession,
    Notification,
    Offer,
    Person,
    RotationCursor,
    SignInFailure,
    Subscription,
    Task,
    Timer,
)
from services.outreach.rotation import ROLES
from shared.db import insert_ignoring_conflicts, is_postgres, rows_matched

CASES, TASKS, TIMERS = Case.__table__, Task.__table__, Timer.__table__
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


# --- cases ---------------------------------------------------------------------------------------------------

_CANCELLATION: BindParameter[str] = bindparam("cancellation_id")
_SUBSCRIPTION = Subscription.__table__
_LATEST_CASE = (
    select(CASES.c.id, CASES.c.after_version)
    .where(CASES.c.cancellation_id == _CANCELLATION)
    .order_by(CASES.c.opened_at.desc(), CASES.c.id.desc())
    .limit(1)
)


def _of_subscription(column: Any) -> Any:
    return select(column).where(_SUBSCRIPTION.c.cancellation_id == _CANCELLATION).scalar_subquery()


# One statement tells where a diagnosis belongs: the open case (locked), the newest case and the withdrawals
# received. Most diagnoses open a case, and each round trip saved is one per new case.
_PLACING_A_CANCELLATION = select(
    select(CASES.c.id)
    .where(CASES.c.cancellation_id == _CANCELLATION, CASES.c.status == "open")
    .with_for_update()
    .scalar_subquery()
    .label("open_case_id"),
    _LATEST_CASE.with_only_columns(CASES.c.id).scalar_subquery().label("latest_case_id"),
    _LATEST_CASE.with_only_columns(CASES.c.after_version).scalar_subquery().label("latest_case_after"),
    _of_subscription(_SUBSCRIPTION.c.staying_version).label("staying_version"),
    _of_subscription(_SUBSCRIPTION.c.previous_staying_version).label("previous_staying_version"),
)


class SubscriptionFacts(NamedTuple):
    """What a diagnosis needs to know of its subscription's cases and withdrawals."""

    open_case_id: str | None
    latest_case_id: str | None
    latest_case_after: int | None
    staying_version: int | None
    previous_staying_version: int | None


async def subscription_facts(session: AsyncSession, cancellation_id: str) -> SubscriptionFacts:
    """The open case (locked), the newest case and its attempt, and the withdrawals received, in one statement."""
    row = (await session.execute(_PLACING_A_CANCELLATION, {"cancellation_id": cancellation_id})).one()
    return SubscriptionFacts(*row)


async def locked_subscription(session: AsyncSession, cancellation_id: str) -> Subscription | None:
    """The subscription's withdrawals row, locked, if one was ever received."""
    return await session.get(Subscription, cancellation_id, with_for_update=True, populate_existing=True)


async def locked_open_case(session: AsyncSession, cancellation_id: str) -> Case | None:
    """The subscription's open case, locked, if there is one."""
    return (
        await session.execute(
            select(Case).where(Case.cancellation_id == cancellation_id, Case.status == "open").with_for_update()
        )
    ).scalar_one_or_none()


async def latest_case(session: AsyncSession, cancellation_id: str) -> Case | None:
    """The subscription's newest case, locked, if there is one."""
    return (
        await session.execute(
            select(Case)
            .where(Case.cancellation_id == cancellation_id)
            .order_by(Case.opened_at.desc(), Case.id.desc())
            .limit(1)
            .with_for_update()
        )
    ).scalar_one_or_none()


async def reached_the_customer_before(session: AsyncSession, case_id: str, *, before: datetime) -> bool:
    """Whether a customer-facing task of the case was completed with a contact result before ``before``."""
    found = await session.scalar(
        select(Task.id)
        .where(
            Task.case_id == case_id,
            Task.status == "done",
            Task.action.not_in(INTERNAL_ACTIONS),
            Task.result.in_(CONTACT_RESULTS),
            Task.completed_at <= before,
        )
        .limit(1)
    )
    return found is not None


async def case_by_id(session: AsyncSession, case_id: str) -> Case:
    """A case known to exist (and already locked by the caller's statement)."""
    return await session.get_one(Case, case_id)


async def locked_case(session: AsyncSession, case_id: str) -> Case:
    """A case known to exist, locked for this transaction."""
    return (await session.execute(select(Case).where(Case.id == case_id).with_for_update())).scalar_one()


async def case_with_history(session: AsyncSession, case_id: str, *, lock: bool = False) -> Case | None:
    """One case with its tasks and history, read afresh."""
    query = (
        select(Case)
        .options(selectinload(Case.tasks), selectinload(Case.events))
        .where(Case.id == case_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def _cases_where(query: Select[Any], **equal_to: str | None) -> Select[Any]:
    """``query`` narrowed to cases whose named columns equal the given values; None and empty mean any."""
    for column, value in equal_to.items():
        if value:
            query = query.where(getattr(Case, column) == value)
    return query


async def cases(
    session: AsyncSession, *, status: str | None, owner: str | None, account_id: str | None, limit: int, offset: int
) -> list[Case]:
    """Cases newest first, with their tasks."""
    query = _cases_where(
        select(Case).options(selectinload(Case.tasks)).order_by(Case.opened_at.desc(), Case.id),
        status=status,
        owner=owner,
        account_id=account_id,
    )
    return list((await session.execute(query.limit(limit).offset(offset))).scalars())


def _matching(query: SelectT, search: str) -> SelectT:
    """Cases whose company, account, customer email or id contains ``search`` (any case)."""
    if not search:
        return query
    needle = search.lower()
    return query.where(
        or_(
            func.lower(Case.customer_name).contains(needle, autoescape=True),
            func.lower(Case.account_id).contains(needle, autoescape=True),
            func.lower(Case.customer_email).contains(needle, autoescape=True),
            Case.id.startswith(needle, autoescape=True),
        )
    )


async def cases_by_priority(
    session: AsyncSession,
    *,
    status: str | None,
    owner: str | None,
    root_cause: str | None,
    limit: int,
    offset: int = 0,
    search: str = "",
) -> tuple[list[Case], int]:
    """A page of cases by priority, then revenue, then deadline, with their tasks (the desk's queue); and how many
    cases match in all."""
    matching = _matching(_cases_where(select(Case), status=status, owner=owner, root_cause=root_cause), search)
    total = await session.scalar(select(func.count()).select_from(matching.subquery())) or 0
    query = (
        matching.options(selectinload(Case.tasks))
        .order_by(
            Case.priority.desc(),
            Case.mrr_minor.desc().nulls_last(),
            Case.effective_at.asc().nulls_last(),
            Case.opened_at,
            Case.id,
        )
        .limit(limit)
        .offset(offset)
    )
    return list((await session.execute(query)).scalars()), total


async def work_tasks(
    session: AsyncSession,
    *,
    owners: list[str],
    open_only: bool,
    overdue_before: datetime | None,
    kind: str | None,
    search: str,
    limit: int,
    offset: int,
) -> tuple[list[Row[Task, Case]], int]:
    """A page of the tasks addressed to ``owners`` with their cases, open ones first, then by due time (so the
    overdue come first); and how many match in all."""
    query = _matching(select(Task, Case).join(Case, Case.id == Task.case_id).where(Task.owner.in_(owners)), search)
    if open_only:
        query = query.where(Task.status == "open")
    if overdue_before is not None:
        query = query.where(Task.status == "open", Task.due_at < overdue_before)
    if kind:
        query = query.where(Task.kind == kind)
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by((Task.status != "open"), Task.due_at, Task.id).limit(limit).offset(offset)
    return list((await session.execute(page)).all()), total


async def owners_and_root_causes(session: AsyncSession) -> tuple[list[str], list[str]]:
    """The owners and root causes that occur on cases, sorted."""
    owners = (await session.execute(select(Case.owner).where(Case.owner.is_not(None)).distinct())).scalars()
    causes = (await session.execute(select(Case.root_cause).distinct())).scalars()
    return sorted(owner for owner in owners if owner), sorted(cause for cause in causes if cause)


async def count_cases_by_status(session: AsyncSession) -> dict[str, int]:
    """Cases per status."""
    rows = await session.execute(select(Case.status, func.count()).group_by(Case.status))
    return dict(rows.all())  # a Result has keys(): dict() would take it for a mapping


_REPORT_COLUMNS = (
    Case.status,
    Case.symptom,
    Case.root_cause,
    Case.confirmed_root_cause,
    Case.playbook,
    Case.owner,
    Case.initiated_by,
    Case.mrr_minor,
    Case.currency,
    Case.opened_at,
    Case.first_touched_at,
    Case.save_status,
)


async def report_rows(session: AsyncSession, *, since: datetime | None, until: datetime | None) -> Sequence[Any]:
    """What the summary report tallies, for cases opened in [since, until)."""
    query = select(*_REPORT_COLUMNS)
    if since:
        query = query.where(Case.opened_at >= since)
    if until:
        query = query.where(Case.opened_at < until)
    return (await session.execute(query)).all()


# --- tasks ---------------------------------------------------------------------------------------------------

_DONE_FOR_ACCOUNT = (
    select(TASKS.c.action, TASKS.c.offer)
    .join(CASES, CASES.c.id == TASKS.c.case_id)
    .where(
        CASES.c.account_id == bindparam("account_id"),
        TASKS.c.status == "done",
        TASKS.c.completed_at >= bindparam("since", type_=TASKS.c.completed_at.type),
    )
)


async def done_for_account(session: AsyncSession, *, account_id: str, since: datetime) -> list[tuple[str, str | None]]:
    """(action, offer) of every task done for the account since ``since``, on any of its cases."""
    rows = await session.execute(_DONE_FOR_ACCOUNT, {"account_id": account_id, "since": since})
    return [(action, offer) for action, offer in rows]


async def done_on_case(session: AsyncSession, case_id: str) -> list[tuple[str, str | None]]:
    """(action, offer) of every task done on the case."""
    rows = await session.execute(select(Task.action, Task.offer).where(Task.case_id == case_id, Task.status == "done"))
    return [(action, offer) for action, offer in rows]


async def next_position(session: AsyncSession, case_id: str) -> int:
    """The position after the case's last task."""
    last = await session.scalar(select(func.max(Task.position)).where(Task.case_id == case_id))
    return 0 if last is None else last + 1


async def count_open_tasks(session: AsyncSession, case_id: str) -> int:
    """The case's open tasks."""
    return (
        await session.scalar(
            select(func.count()).select_from(Task).where(Task.case_id == case_id, Task.status == "open")
        )
        or 0
    )


async def open_escalation_tasks(session: AsyncSession, case_id: str) -> list[Task]:
    """The case's open rung tasks (the customer ladder waits while one is neither overdue nor past its snooze)."""
    query = select(Task).where(Task.case_id == case_id, Task.kind == "escalation", Task.status == "open")
    return list((await session.execute(query)).scalars())


async def times_rung_worked(session: AsyncSession, case_id: str, rung: str) -> int:
    """How many tasks the case has had for ``rung`` (a rung that repeats is worked more than once)."""
    query = select(func.count()).select_from(Task).where(Task.case_id == case_id, Task.rung == rung)
    return await session.scalar(query) or 0


async def open_tasks_of(session: AsyncSession, owner: str, *, due_before: datetime) -> list[tuple[Task, Case]]:
    """The owner's open tasks due before ``due_before`` (overdue included), with their cases, by due time."""
    query = (
        select(Task, Case)
        .join(Case, Case.id == Task.case_id)
        .where(Task.owner == owner, Task.status == "open", Task.due_at < due_before)
        .order_by(Task.due_at, Task.id)
        .limit(200)
    )
    return [(task, case) for task, case in (await session.execute(query)).all()]


async def count_overdue_tasks(session: AsyncSession, *, now: datetime) -> int:
    """Open tasks past their due time."""
    return (
        await session.scalar(select(func.count()).select_from(Task).where(Task.status == "open", Task.due_at < now))
        or 0
    )


async def locked_task(session: AsyncSession, task_id: str) -> Task | None:
    """A task, locked for this transaction, if it exists."""
    return (await session.execute(select(Task).where(Task.id == task_id).with_for_update())).scalar_one_or_none()


async def tasks(
    session: AsyncSession,
    *,
    now: datetime,
    owner: str | None = None,
    status: str | None = None,
    due_before: datetime | None = None,
    due_after: datetime | None = None,
    overdue: bool = False,
    case_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[Task]:
    """Tasks by due time, filtered; ``overdue`` means open and due before ``now``."""
    query = select(Task).order_by(Task.due_at, Task.id)
    if owner:
        query = query.where(Task.owner == owner)
    if status:
        query = query.where(Task.status == status)
    if case_id:
        query = query.where(Task.case_id == case_id)
    if due_before:
        query = query.where(Task.due_at < due_before)
    if due_after:
        query = query.where(Task.due_at >= due_after)
    if overdue:
        query = query.where(Task.status == "open", Task.due_at < now)
    return list((await session.execute(query.limit(limit).offset(offset))).scalars())


async def cancel_open_tasks(
    session: AsyncSession, case_id: str, *, kinds: tuple[str, ...], now: datetime, reason: str
) -> int:
    """Cancel the case's open tasks of the given kinds and their pending timers; returns the tasks cancelled."""
    open_tasks = select(Task.id).where(Task.case_id == case_id, Task.status == "open", Task.kind.in_(kinds))
    await session.execute(
        update(Timer)
        .where(
            Timer.case_id == case_id,
            Timer.fired_at.is_(None),
            Timer.cancelled_at.is_(None),
            Timer.task_id.in_(open_tasks),
        )
        .values(cancelled_at=now, outcome=reason)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(
        update(Task)
        .where(Task.case_id == case_id, Task.status == "open", Task.kind.in_(kinds))
        .values(status="cancelled", note=reason)
        .execution_options(synchronize_session=False)
    )
    return rows_matched(result)


# --- timers --------------------------------------------------------------------------------------------------

# The due timer, its case and its task in one statement; built once, as the aliased task is costly to adapt.
_TIMER_TASK = aliased(Task)
_DUE = (
    select(Timer, Case, _TIMER_TASK)
    .join(Case, Case.id == Timer.case_id)
    .outerjoin(_TIMER_TASK, _TIMER_TASK.id == Timer.task_id)
    .where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
    .order_by(Timer.due_at, Timer.id)
)


async def due_timers(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[Row[Timer, Case, Task | None]]:
    """Due timers with their case and task; on PostgreSQL the timer and case locked, rows others hold skipped."""
    query = _DUE.where(Timer.due_at <= now).limit(limit)
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=(Timer, Case))
    return (await session.execute(query)).all()


async def claim_timer(session: AsyncSession, timer_id: str, *, now: datetime) -> bool:
    """Mark a pending timer fired; False when another instance fired or cancelled it first."""
    claimed = await session.execute(
        update(TIMERS)
        .where(TIMERS.c.id == timer_id, TIMERS.c.fired_at.is_(None), TIMERS.c.cancelled_at.is_(None))
        .values(fired_at=now)
    )
    return rows_matched(claimed) == 1


async def record_timer_outcome(session: AsyncSession, timer_id: str, outcome: str) -> None:
    """What firing the timer did."""
    await session.execute(update(TIMERS).where(TIMERS.c.id == timer_id).values(outcome=outcome))


async def cancel_case_timers(session: AsyncSession, case_id: str, *, now: datetime, outcome: str) -> None:
    """Cancel every pending timer of the case."""
    await session.execute(
        update(Timer)
        .where(Timer.case_id == case_id, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=now, outcome=outcome)
    )


async def cancel_expiry_timers(session: AsyncSession, case_id: str, *, now: datetime, outcome: str) -> None:
    """Cancel the case's pending expiry timer (its effective date moved)."""
    await session.execute(
        update(Timer)
        .where(Timer.case_id == case_id, Timer.kind == "expire", Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=now, outcome=outcome)
    )


async def cancel_task_timers(session: AsyncSession, task_id: str, *, now: datetime, outcome: str) -> None:
    """Cancel the task's pending escalation timer."""
    await session.execute(
        update(Timer)
        .where(Timer.task_id == task_id, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=now, outcome=outcome)
    )


async def reschedule_timer(session: AsyncSession, timer: Timer, *, due_at: datetime, now: datetime) -> None:
    """The same timer again at a later time: fired now only to find it must wait (a snooze, the previous rung)."""
    session.add(
        Timer(
            id=str(uuid.uuid4()),
            case_id=timer.case_id,
            task_id=timer.task_id,
            kind=timer.kind,
            step=timer.step,
            due_at=due_at,
            created_at=now,
            fired_at=None,
            cancelled_at=None,
            outcome=None,
        )
    )


async def cancel_case_timers_of_kind(
    session: AsyncSession, case_id: str, kind: str, *, now: datetime, outcome: str
) -> int:
    """Cancel the case's pending timers of one kind; returns how many."""
    result = await session.execute(
        update(Timer)
        .where(Timer.case_id == case_id, Timer.kind == kind, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
        .values(cancelled_at=now, outcome=outcome)
    )
    return rows_matched(result)


async def pending_task_timers(session: AsyncSession, task_id: str) -> list[Timer]:
    """The task's timers still to fire (its escalation, its reminders)."""
    query = select(Timer).where(Timer.task_id == task_id, Timer.fired_at.is_(None), Timer.cancelled_at.is_(None))
    return list((await session.execute(query)).scalars())


async def oldest_late_timer(session: AsyncSession, *, now: datetime) -> datetime | None:
    """Due time of the oldest timer that should have fired by ``now`` and has not."""
    return await session.scalar(
        select(func.min(Timer.due_at)).where(
            Timer.fired_at.is_(None), Timer.cancelled_at.is_(None), Timer.due_at <= now
        )
    )


# --- people ------------------------------------------------------------------------------------------------


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


# --- rotations -----------------------------------------------------------------------------------------------


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


# --- notifications -------------------------------------------------------------------------------------------


async def lease_due_notifications(
    session: AsyncSession, *, now: datetime, until: datetime, token: str, limit: int
) -> list[Notification]:
    """Pending notifications due by ``now`` and not leased, leased to ``token`` until ``until`` (others' skipped)."""
    query = (
        select(Notification)
        .where(
            Notification.status == "pending",
            Notification.next_attempt_at <= now,
            or_(Notification.locked_until.is_(None), Notification.locked_until < now),
        )
        .order_by(Notification.next_attempt_at)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    claimed = list((await session.execute(query)).scalars())
    for notification in claimed:
        notification.locked_until, notification.lease_token = until, token
    return claimed


async def renew_notification_leases(session: AsyncSession, *, token: str, until: datetime) -> int:
    """Extend every lease ``token`` still holds on a pending notification; returns how many."""
    result = await session.execute(
        update(Notification)
        .where(Notification.lease_token == token, Notification.status == "pending")
        .values(locked_until=until)
    )
    return rows_matched(result)


async def finish_notification(session: AsyncSession, notification_id: str, *, token: str, **values: Any) -> bool:
    """Record a delivery attempt's result and release the lease; False when ``token`` no longer held it."""
    result = await session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.lease_token == token)
        .values(locked_until=None, lease_token=None, **values)
    )
    return rows_matched(result) == 1


async def add_notifications_once(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Insert notifications whose ids are derived from what they announce; one already there is left alone."""
    for row in rows:
        await session.execute(insert_ignoring_conflicts(session, Notification.__table__, **row))


# --- people, desk sessions, sign-in failures -------------------------------------------------------------------


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


async def people_for_routing(session: AsyncSession) -> Sequence[Row[str, str, str, str | None, bool]]:
    """Everyone's id, email, role, manager and whether active: routing decides in Python (teams are small)."""
    return (await session.execute(select(Person.id, Person.email, Person.role, Person.manager_id, Person.active))).all()


async def names_by_email(session: AsyncSession, emails: set[str]) -> dict[str, str]:
    rows = await session.execute(select(Person.email, Person.name).where(Person.email.in_(emails)))
    return dict(rows.all())


async def anyone_set_up(session: AsyncSession) -> bool:
    return await session.scalar(select(Person.id).limit(1)) is not None


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


# --- Save offers ---------------------------------------------------------------------------------------------------

OFFERS_COUNTED = ("awaiting_approval", "applied")  # what counts towards an account's offers a year


async def locked_offer(session: AsyncSession, offer_id: str) -> Offer | None:
    """One offer, locked for this transaction: a second approval of it waits, then finds it decided."""
    query = select(Offer).where(Offer.id == offer_id).with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def lock_offer_budget(session: AsyncSession) -> None:
    """Serialise the budget's check-then-spend across instances (PostgreSQL; SQLite has a single writer)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('outreach_offers_budget'))"))


async def offer_budget_drawn(
    session: AsyncSession,
    *,
    period_start: datetime,
    period_end: datetime,
    team: str | None = None,
    leaving_out: str | None = None,
) -> dict[str, tuple[int, int]]:
    """(spent, committed) by team (or of one): the cost of offers applied in the period, and of those waiting."""
    spent = (
        select(Offer.team, func.sum(Offer.cost_minor))
        .where(Offer.status == "applied", Offer.applied_at >= period_start, Offer.applied_at < period_end)
        .group_by(Offer.team)
    )
    committed = (
        select(Offer.team, func.sum(Offer.cost_minor))
        .where(Offer.status == "awaiting_approval", Offer.id != (leaving_out or ""))
        .group_by(Offer.team)
    )
    if team is not None:
        spent, committed = spent.where(Offer.team == team), committed.where(Offer.team == team)
    spent_by = {name: int(total or 0) for name, total in await session.execute(spent)}
    committed_by = {name: int(total or 0) for name, total in await session.execute(committed)}
    return {name: (spent_by.get(name, 0), committed_by.get(name, 0)) for name in {*spent_by, *committed_by}}


async def account_offers(
    session: AsyncSession, account_id: str, *, since: datetime, leaving_out: str | None = None
) -> tuple[list[datetime], set[str]]:
    """When the account's counted offers since ``since`` were proposed, and the names of its offers that failed."""
    rows = await session.execute(
        select(Offer.status, Offer.proposed_at, Offer.offer).where(
            Offer.account_id == account_id, Offer.id != (leaving_out or "")
        )
    )
    counted, failed = [], set()
    for status, proposed_at, name in rows:
        if status in OFFERS_COUNTED and proposed_at >= since:
            counted.append(proposed_at)
        if status == "failed":
            failed.add(name)
    return counted, failed


async def offers_of_case(session: AsyncSession, case_id: str) -> list[Offer]:
    """The case's offers, oldest first."""
    query = select(Offer).where(Offer.case_id == case_id).order_by(Offer.proposed_at, Offer.id)
    return list((await session.execute(query)).scalars())


async def offers_with_status(session: AsyncSession, status: str, *, limit: int, offset: int) -> list[Offer]:
    """Offers in one status, oldest proposal first (what waits longest for approval comes first)."""
    query = (
        select(Offer).where(Offer.status == status).order_by(Offer.proposed_at, Offer.id).limit(limit).offset(offset)
    )
    return list((await session.execute(query)).scalars())
