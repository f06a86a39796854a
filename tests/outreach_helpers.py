"""A controllable clock, diagnosis builders and a harness driving outreach's use cases on a real database."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.outreach.app import build_policy
from services.outreach.cases import open_or_update_case
from services.outreach.endings import close_case
from services.outreach.escalation import Fired
from services.outreach.models import (
    Case,
    CaseEvent,
    DeskSession,
    Notification,
    Offer,
    PaidInvoice,
    Person,
    RotationCursor,
    SignInFailure,
    Subscription,
    Task,
    Timer,
    outbox,
)
from services.outreach.policy import Policy
from services.outreach.saves import verify_by_invoice
from services.outreach.scheduler import Scheduler
from services.outreach.settings import OutreachSettings
from services.outreach.tasks import complete_task
from services.outreach.withdrawals import withdraw
from shared.db import make_engine, make_sessionmaker, transaction
from shared.events import CancellationWithdrawn, DiagnosisCompleted, InvoicePaid, Money, Verdict

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when the test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def advance(self, **delta: float) -> datetime:
        self.current += timedelta(**delta)
        return self.current


class MovableClock:
    """The wall clock, moved forward when the test wants time to pass (tasks to fall overdue, a save's window to end)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def diagnosis(
    *,
    root_cause: str = "poor_implementation",
    decision: str = "pursue",
    version: int = 1,
    cancellation_id: str | None = None,
    account_id: str | None = None,
    mrr_minor: int | None = 49_000,
    effective_in: timedelta | None = timedelta(days=20),
    now: datetime = START,
    priority: int = 50,
    account_owner: str | None = None,
    avoid: list[str] | None = None,
    customer_name: str = "Acme GmbH",
    state_version: int = 0,
    initiated_by: str = "customer",
) -> DiagnosisCompleted:
    """A diagnosis.completed payload as the diagnosis service sends it."""
    account_id = account_id or f"stripe:cus_{uuid.uuid4().hex[:12]}"
    return DiagnosisCompleted(
        diagnosis_id=str(uuid.uuid4()),
        diagnosis_version=version,
        cancellation_id=cancellation_id or f"stripe:sub_{uuid.uuid4().hex[:12]}",
        account_id=account_id,
        customer_id=account_id.split(":")[1],
        customer_name=customer_name,
        account_owner=account_owner,
        source="stripe",
        mrr=Money(amount_minor=mrr_minor, currency="usd") if mrr_minor is not None else None,
        effective_at=now + effective_in if effective_in is not None else None,
        symptom="unused",
        root_cause=root_cause,
        avoid=avoid or [],
        verdict=Verdict(decision=decision, priority=priority),
        recommended_playbook=root_cause if decision == "pursue" else decision,
        state_version=state_version,
        initiated_by=initiated_by,
    )


def withdrawal(
    of: DiagnosisCompleted, *, state_version: int = 0, reason: str = "scheduled_cancellation_removed"
) -> CancellationWithdrawn:
    return CancellationWithdrawn(
        cancellation_id=of.cancellation_id,
        account_id=of.account_id,
        source="stripe",
        source_event_id=f"evt_{uuid.uuid4().hex[:10]}",
        source_event_type="customer.subscription.updated",
        customer_id=of.customer_id,
        state_version=state_version,
        reason=reason,
    )


def invoice_paid(of: DiagnosisCompleted, *, state_version: int) -> InvoicePaid:
    """An invoice of the diagnosed subscription paid, at billing version ``state_version``."""
    return InvoicePaid(
        cancellation_id=of.cancellation_id,
        account_id=of.account_id,
        source="stripe",
        source_event_id=f"evt_{uuid.uuid4().hex[:10]}",
        source_event_type="invoice.paid",
        customer_id=of.customer_id,
        state_version=state_version,
    )


OUTREACH_TABLES = (
    Offer,
    Notification,
    Timer,
    CaseEvent,
    Task,
    Case,
    Subscription,
    PaidInvoice,
    RotationCursor,
    DeskSession,
    SignInFailure,
    Person,
)


async def wipe_outreach(engine: AsyncEngine) -> None:
    """Timers fire across all cases, so each test starts with empty outreach tables."""
    async with engine.begin() as connection:
        for model in OUTREACH_TABLES:
            await connection.execute(delete(model))
        await connection.execute(delete(outbox))


@dataclass
class Desk:
    """Drives outreach's use cases the way the consumers, the API and the scheduler do, one transaction each."""

    sessions: async_sessionmaker[AsyncSession]
    clock: FakeClock
    policy: Policy
    fired: list[Fired] = field(default_factory=list)

    async def receive(self, payload: DiagnosisCompleted) -> str:
        """The case the diagnosis opened or updated ("" when it belonged to an earlier attempt)."""
        async with transaction(self.sessions) as session:
            case = await open_or_update_case(session, payload, policy=self.policy, clock=self.clock)
            return case.id if case else ""

    async def withdraw(self, payload: CancellationWithdrawn) -> None:
        async with transaction(self.sessions) as session:
            await withdraw(
                session,
                payload,
                clock=self.clock,
                policy=self.policy,
                correlation_id="test",
                withdrawn_at=self.clock.now(),
            )

    async def invoice_paid(self, payload: InvoicePaid) -> None:
        async with transaction(self.sessions) as session:
            await verify_by_invoice(session, payload, now=self.clock.now())

    async def complete(self, task_id: str, result: str, note: str | None = None) -> Task:
        async with transaction(self.sessions) as session:
            return await complete_task(
                session, task_id, result=result, note=note, performed_by=None, clock=self.clock, policy=self.policy
            )

    async def close(self, case_id: str, outcome: str) -> None:
        async with transaction(self.sessions) as session:
            case = await session.get(Case, case_id)
            await close_case(session, case, outcome=outcome, reason="by hand", clock=self.clock, policy=self.policy)

    def scheduler(self) -> Scheduler:
        """The real scheduler on this desk's database, policy and clock, without notifiers."""
        return Scheduler(
            sessions=self.sessions,
            policy=self.policy,
            clock=self.clock,
            notifiers={},
            poll_seconds=1.0,
            notify_rounds=1,
            notify_backoff=timedelta(0),
        )

    async def tick(self) -> list[Fired]:
        """One pass of the real scheduler: fire every due timer, one transaction each."""
        fired = await self.scheduler().fire_timers(limit=100_000)
        self.fired.extend(fired)
        return fired

    async def wait(self, **delta: float) -> list[Fired]:
        """Let time pass and run the scheduler once."""
        self.clock.advance(**delta)
        return await self.tick()

    async def run(self, *, hours: float, every_hours: float = 1) -> list[Fired]:
        """Let ``hours`` pass with the scheduler polling every ``every_hours``."""
        fired: list[Fired] = []
        for _ in range(int(hours / every_hours)):
            fired += await self.wait(hours=every_hours)
        return fired

    async def work_due_tasks(self, case_id: str, result: str) -> int:
        """The owners try every step and rung task of the case that is due, each with ``result``."""
        due = [
            task
            for task in await self.tasks(case_id, status="open")
            if task.kind != "closing" and task.due_at <= self.clock.now()
        ]
        for task in due:
            await self.complete(task.id, result)
        return len(due)

    async def run_unanswered(self, case_id: str, *, hours: float, every_hours: float = 1) -> list[Fired]:
        """Let ``hours`` pass; each hour the owners try what is due on the case and the customer never answers."""
        fired: list[Fired] = []
        for _ in range(int(hours / every_hours)):
            await self.work_due_tasks(case_id, "no_answer")
            fired += await self.wait(hours=every_hours)
        return fired

    async def snooze(self, task_id: str, *, until: datetime) -> None:
        """Put a task off, as the desk's snooze action records it."""
        async with transaction(self.sessions) as session:
            await session.execute(update(Task).where(Task.id == task_id).values(snoozed_until=until))

    async def open_cases(self) -> list[Case]:
        async with self.sessions() as session:
            return list((await session.execute(select(Case).where(Case.status == "open"))).scalars())

    async def case(self, case_id: str) -> Case:
        async with self.sessions() as session:
            return await session.get(Case, case_id)

    async def cases_of(self, cancellation_id: str) -> list[Case]:
        """The subscription's cases, oldest first."""
        async with self.sessions() as session:
            query = select(Case).where(Case.cancellation_id == cancellation_id).order_by(Case.opened_at, Case.id)
            return list((await session.execute(query)).scalars())

    async def timers(self, case_id: str) -> list[Timer]:
        async with self.sessions() as session:
            return list((await session.execute(select(Timer).where(Timer.case_id == case_id))).scalars())

    async def tasks(self, case_id: str, *, status: str | None = None) -> list[Task]:
        async with self.sessions() as session:
            query = select(Task).where(Task.case_id == case_id).order_by(Task.position)
            if status:
                query = query.where(Task.status == status)
            return list((await session.execute(query)).scalars())

    async def open_task(self, case_id: str) -> Task:
        """The first open task (by position)."""
        return (await self.tasks(case_id, status="open"))[0]

    async def history(self, case_id: str) -> list[CaseEvent]:
        async with self.sessions() as session:
            query = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
            return list((await session.execute(query)).scalars())

    async def published(self, event_type: str) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(outbox.c.body).where(outbox.c.event_type == event_type).order_by(outbox.c.id)
            )
            return [json.loads(body)["data"] for (body,) in rows]

    async def notifications(self) -> list[Notification]:
        async with self.sessions() as session:
            return list((await session.execute(select(Notification).order_by(Notification.created_at))).scalars())


def outreach_settings(**overrides: Any) -> OutreachSettings:
    values: dict[str, Any] = {
        "api_tokens": ["test-token-outreach"],
        "rotation_csm": ["ana", "ben", "cleo"],
        "rotation_cs_manager": ["maria"],
        "rotation_vp_customer_success": ["victor"],
        "rotation_executive_sponsor": ["eve"],
        "high_value_mrr_minor": 100_000,
    }
    values.update(overrides)
    return OutreachSettings(_env_file=None, **values)  # type: ignore[call-arg]


async def open_desk(
    url: str, *, channels: tuple[str, ...] = (), clock: FakeClock | None = None, wipe: bool = True, **overrides: Any
) -> tuple[Desk, AsyncEngine]:
    engine = make_engine(url)
    if wipe:
        await wipe_outreach(engine)
    policy = build_policy(outreach_settings(**overrides), channels)
    return Desk(sessions=make_sessionmaker(engine), clock=clock or FakeClock(), policy=policy), engine
