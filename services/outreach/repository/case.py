"""Cases: where a cancellation or a withdrawal belongs, a case read or locked, the lists and the desk's queue."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import BindParameter, Select, bindparam, delete, exists, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload, with_expression

from services.outreach.attempts import CONTACT_RESULTS, INTERNAL_ACTIONS
from services.outreach.models import Case, CaseCountChange, CaseEvent, Subscription, Task
from shared.db import is_postgres
from shared.outbox import PLAN_AS_CONFIGURED, PLAN_EACH_STATEMENT

CASES = Case.__table__
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


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


TASKS = Task.__table__
# What was done for an account, on any of its cases, since a moment: asked of each new case (tried recently).
DONE_FOR_ACCOUNT = (
    select(TASKS.c.action, TASKS.c.offer)
    .join(CASES, CASES.c.id == TASKS.c.case_id)
    .where(
        CASES.c.account_id == bindparam("account_id"),
        TASKS.c.status == "done",
        TASKS.c.completed_at >= bindparam("since", type_=TASKS.c.completed_at.type),
    )
)

# One statement tells where a diagnosis belongs: the open case (locked), the newest case and the withdrawals
# received, and whether anything was done for the account lately (most new accounts: nothing, so nothing more is
# asked). Most diagnoses open a case, and each round trip saved is one per new case.
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
    exists(DONE_FOR_ACCOUNT).label("account_worked_since"),
)


class SubscriptionFacts(NamedTuple):
    """What a diagnosis needs to know of its subscription's cases and withdrawals."""

    open_case_id: str | None
    latest_case_id: str | None
    latest_case_after: int | None
    staying_version: int | None
    previous_staying_version: int | None
    account_worked_since: bool  # a task was done for the account since the moment asked about


async def subscription_facts(
    session: AsyncSession, cancellation_id: str, *, account_id: str, worked_since: datetime
) -> SubscriptionFacts:
    """The open case (locked), the newest case and its attempt, the withdrawals received, and whether a task was
    done for the account since ``worked_since``, in one statement."""
    row = (
        await session.execute(
            _PLACING_A_CANCELLATION,
            {"cancellation_id": cancellation_id, "account_id": account_id, "since": worked_since},
        )
    ).one()
    return SubscriptionFacts(*row)


# The same facts for many subscriptions at once (PostgreSQL): a batch of diagnoses asks one statement, not one
# each. Open cases are locked in whatever order the plan reaches them: a deadlock with another transaction fails the
# batch, whose diagnoses are then handled one at a time (shared.consumer), so it costs time, never a case.
_PLACING_MANY_CANCELLATIONS = text(
    """
    SELECT
      wanted.position,
      (SELECT c.id FROM outreach_cases c
        WHERE c.cancellation_id = wanted.cancellation_id AND c.status = 'open' FOR UPDATE) AS open_case_id,
      latest.id AS latest_case_id,
      latest.after_version AS latest_case_after,
      s.staying_version,
      s.previous_staying_version,
      worked.done IS NOT NULL AS account_worked_since
    FROM unnest(CAST(:cancellation_ids AS text[]), CAST(:account_ids AS text[]))
      WITH ORDINALITY AS wanted (cancellation_id, account_id, position)
    LEFT JOIN LATERAL (
      SELECT c.id, c.after_version FROM outreach_cases c
      WHERE c.cancellation_id = wanted.cancellation_id
      ORDER BY c.opened_at DESC, c.id DESC LIMIT 1
    ) AS latest ON true
    LEFT JOIN outreach_subscriptions s ON s.cancellation_id = wanted.cancellation_id
    -- A lateral join with LIMIT 1 rather than EXISTS: PostgreSQL may run an EXISTS as one hashed subplan over
    -- every task done in the window; this looks up each account's cases and stops at the first done task.
    LEFT JOIN LATERAL (
      SELECT true AS done FROM outreach_cases c JOIN outreach_tasks t ON t.case_id = c.id
      WHERE c.account_id = wanted.account_id AND t.status = 'done' AND t.completed_at >= :since
      LIMIT 1
    ) AS worked ON true
    ORDER BY wanted.position
    """
).bindparams(bindparam("since", type_=TASKS.c.completed_at.type))


async def subscription_facts_of_many(
    session: AsyncSession, subscriptions: list[tuple[str, str]], *, worked_since: datetime
) -> dict[str, SubscriptionFacts]:
    """``subscription_facts`` of each (cancellation id, account id), by cancellation id: one statement on
    PostgreSQL, one per subscription on SQLite."""
    wanted = list(subscriptions)
    if not is_postgres(session):
        return {
            cancellation_id: await subscription_facts(
                session, cancellation_id, account_id=account_id, worked_since=worked_since
            )
            for cancellation_id, account_id in wanted
        }
    # Planned for the tables as they are now, each time. The prepared statement's kept (generic) plan, made while
    # the tables were nearly empty, read all of outreach_cases for each subscription: a median 86 ms a batch and 9.8
    # ms of PostgreSQL CPU per cancellation in the benchmark's burst, against 2.1 before.
    await session.execute(PLAN_EACH_STATEMENT)
    rows = (
        await session.execute(
            _PLACING_MANY_CANCELLATIONS,
            {
                "cancellation_ids": [cancellation_id for cancellation_id, _ in wanted],
                "account_ids": [account_id for _, account_id in wanted],
                "since": worked_since,
            },
        )
    ).all()
    await session.execute(PLAN_AS_CONFIGURED)  # the rest of the transaction keeps its statements' plans
    return {wanted[row[0] - 1][0]: SubscriptionFacts(*row[1:]) for row in rows}


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


# Tied on version: an open case whose newest cancellation carries the same billing version as a withdrawal (its
# history's same_version_tie entry names that version), left for a person to decide. A newer cancellation on the
# case (a higher state_version) or a newer withdrawal (which closes it) settles the tie. Versions reach 10^13
# (Chargebee's milliseconds), past a 32-bit INTEGER: compared as NUMERIC.
TIED = (Case.status == "open") & (
    select(CaseEvent.id)
    .where(
        CaseEvent.case_id == Case.id,
        CaseEvent.kind == "same_version_tie",
        CaseEvent.detail["version"].as_numeric(20, 0) == Case.state_version,
    )
    .exists()
)


async def case_with_history(session: AsyncSession, case_id: str, *, lock: bool = False) -> Case | None:
    """One case with its tasks and history, read afresh."""
    query = (
        select(Case)
        .options(selectinload(Case.tasks), selectinload(Case.events), with_expression(Case.tied, TIED))
        .where(Case.id == case_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


def _cases_where(query: Select[Any], *, tied: bool | None = None, **equal_to: str | None) -> Select[Any]:
    """``query`` narrowed to cases whose named columns equal the given values, and tied on version or not;
    None and empty mean any."""
    for column, value in equal_to.items():
        if value:
            query = query.where(getattr(Case, column) == value)
    if tied is not None:
        query = query.where(TIED if tied else ~TIED)
    return query


async def cases(
    session: AsyncSession,
    *,
    status: str | None,
    owner: str | None,
    account_id: str | None,
    limit: int,
    offset: int,
    tied: bool | None = None,
) -> list[Case]:
    """Cases newest first, with their tasks, and whether each is tied on version."""
    query = _cases_where(
        select(Case)
        .options(selectinload(Case.tasks), with_expression(Case.tied, TIED))
        .execution_options(populate_existing=True)
        .order_by(Case.opened_at.desc(), Case.id),
        status=status,
        owner=owner,
        account_id=account_id,
        tied=tied,
    )
    return list((await session.execute(query.limit(limit).offset(offset))).scalars())


def matching_search(query: SelectT, search: str) -> SelectT:
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
    tied: bool | None = None,
) -> tuple[list[Case], int]:
    """A page of cases by priority, then revenue, then deadline, with their tasks (the desk's queue); and how many
    cases match in all."""
    narrowed = _cases_where(select(Case), status=status, owner=owner, root_cause=root_cause, tied=tied)
    matching = matching_search(narrowed, search)
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


async def owners_and_root_causes(session: AsyncSession) -> tuple[list[str], list[str]]:
    """The owners and root causes that occur on cases, sorted."""
    owners = (await session.execute(select(Case.owner).where(Case.owner.is_not(None)).distinct())).scalars()
    causes = (await session.execute(select(Case.root_cause).distinct())).scalars()
    return sorted(owner for owner in owners if owner), sorted(cause for cause in causes if cause)


COUNT_CHANGES = CaseCountChange.__table__


async def count_cases_by_status(session: AsyncSession) -> dict[str, int]:
    """Cases per status, summed from the changes the database records as cases are written (those since the last
    count, and one row per status before them, however many cases there are), after folding them."""
    await _fold_count_changes(session)
    totals = await session.execute(
        select(COUNT_CHANGES.c.status, func.sum(COUNT_CHANGES.c.change)).group_by(COUNT_CHANGES.c.status)
    )
    return {status: int(total) for status, total in totals if total}


async def reclaim_count_changes(session: AsyncSession) -> None:
    """VACUUM the count changes, in a session of its own (VACUUM cannot run in a transaction), on PostgreSQL.

    Every fold deletes the rows recorded since the last, thousands a minute under load (one per insert
    statement), and scans the dead ones it left before. Where autovacuum is off or behind nothing reclaims them:
    the table grew by about a dead row per consumer batch for as long as Brink ran (117,000 dead against 12,000
    live after 130,000 cancellations in a soak), and each minute's fold read them all. This VACUUM takes no lock
    that stops reads or writes: it leaves the table's empty end in place rather than take the exclusive lock that
    cutting it needs, on a table every new case's statement writes to; the next minute's rows fill it again.
    SQLite reuses a deleted row's space by itself.
    """
    if not is_postgres(session):
        return
    connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    await connection.execute(text(f"VACUUM (TRUNCATE false) {COUNT_CHANGES.name}"))


async def _fold_count_changes(session: AsyncSession) -> None:
    """Replace the changes this transaction can take with their sum per status. It takes exactly the rows it
    deletes: one another transaction adds meanwhile waits for the next fold, and a fold running beside this one
    takes the rest, so no change is lost or counted twice. The sum is read afterwards, not from what was taken,
    because a fold beside this one may have taken them all."""
    taken = await session.execute(delete(COUNT_CHANGES).returning(COUNT_CHANGES.c.status, COUNT_CHANGES.c.change))
    totals: Counter[str] = Counter()
    for status, change in taken:
        totals[status] += change
    folded = [{"status": status, "change": count} for status, count in totals.items() if count]
    if folded:
        await session.execute(insert(COUNT_CHANGES), folded)
