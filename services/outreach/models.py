"""Outreach's tables: cases, their tasks, history, escalation timers, owner rotation, notifications, outbox."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, query_expression, relationship

from services.outreach import ladder_file
from shared.db import Base
from shared.outbox import handled_table, outbox_table

outbox = outbox_table("outreach")
handled = handled_table("outreach")

CASE_STATUSES = ("open", "saved", "stayed_unprompted", "lost", "moved_on")
SAVE_STATUSES = ("pending", "verified", "reverted")
TASK_STATUSES = ("open", "done", "cancelled")
TASK_KINDS = ("step", "escalation", "closing")
TASK_RESULTS = ladder_file.TASK_RESULTS


class Case(Base):
    """One cancellation being worked, from the first diagnosis to an ending."""

    __tablename__ = "outreach_cases"
    __table_args__ = (
        # A subscription has many cases over time (one per attempt to leave), but one open at a time.
        Index(
            "ux_outreach_cases_open_cancellation",
            "cancellation_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cancellation_id: Mapped[str] = mapped_column(String(255), index=True)
    account_id: Mapped[str] = mapped_column(String(255), index=True)
    customer_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(24), index=True, doc="open, saved, stayed_unprompted, lost or moved_on")
    symptom: Mapped[str] = mapped_column(String(64))
    root_cause: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    mrr_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    effective_at: Mapped[datetime | None]
    owner: Mapped[str | None] = mapped_column(String(255))
    diagnosis_version: Mapped[int]
    diagnosis: Mapped[dict[str, Any]]
    opened_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    playbook: Mapped[str | None] = mapped_column(String(64), doc="name of the playbook being worked")
    escalation_level: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", doc="rungs of the ladder climbed so far (0: none)"
    )
    sequence_exhausted: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false"), doc="no rung of the ladder is left to climb"
    )
    first_touched_at: Mapped[datetime | None] = mapped_column(doc="first task completed, whatever its result")
    closed_reason: Mapped[str | None] = mapped_column(Text)
    customer_email: Mapped[str | None] = mapped_column(String(320), doc="the billing customer's email, for search")
    after_version: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0", doc="billing version of the withdrawal this attempt came after"
    )
    state_version: Mapped[int] = mapped_column(
        BigInteger, default=0, server_default="0", doc="billing version of the newest cancellation applied"
    )
    ended_version: Mapped[int | None] = mapped_column(BigInteger, doc="billing version of the event that ended it")
    previous_case_id: Mapped[str | None] = mapped_column(String(36), index=True, doc="the subscription's case before")
    initiated_by: Mapped[str | None] = mapped_column(String(32), doc="customer, billing_system, staff or unknown")
    confirmed_root_cause: Mapped[str | None] = mapped_column(String(64), doc="what the person closing it found")
    save_status: Mapped[str | None] = mapped_column(String(16), doc="saved only: pending, verified or reverted")
    save_verify_by: Mapped[datetime | None] = mapped_column(doc="a pending save still standing then is verified")
    save_settled_at: Mapped[datetime | None] = mapped_column(doc="when the save was verified or reverted")
    # Whether the newest cancellation ties with a withdrawal on billing version: loaded only by the repository's
    # reads that ask for it (repository.case.TIED), None otherwise.
    tied: Mapped[bool | None] = query_expression()

    tasks: Mapped[list[Task]] = relationship(back_populates="case", lazy="raise", order_by="Task.position")
    events: Mapped[list[CaseEvent]] = relationship(back_populates="case", lazy="raise", order_by="CaseEvent.id")


class CaseCountChange(Base):
    """How the number of cases in a status changed: rows the database's own triggers on ``outreach_cases`` add
    (migration ``outreach_0014``), folded into one per status as the gauge counts them. Counting every case once a
    minute read the whole table, whose size only grows; the gauge now reads the statements' changes since its last
    count (thousands a minute at 250 cancellations a second), however many cases there are."""

    __tablename__ = "outreach_case_count_changes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    status: Mapped[str] = mapped_column(String(24))
    change: Mapped[int] = mapped_column(BigInteger)


class Task(Base):
    """One step of a playbook or rung of the ladder, owned by a person, due at a time."""

    __tablename__ = "outreach_tasks"
    # The overdue count reads the open tasks past due, not every open task: in a soak where no case closed, the
    # status index made it read all of them every minute, through the shared buffers.
    __table_args__ = (
        Index(
            "ix_outreach_tasks_open_due",
            "due_at",
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("outreach_cases.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    action: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    owner_role: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True, doc="open, done or cancelled")
    due_at: Mapped[datetime]
    result: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(
        String(16), default="step", server_default="step", doc="step (of a playbook), escalation (a rung) or closing"
    )
    offer: Mapped[str | None] = mapped_column(String(64), doc="for action offer: what is offered")
    playbook: Mapped[str | None] = mapped_column(String(64))
    rung: Mapped[str | None] = mapped_column(String(32), doc="for escalation tasks: the ladder rung")
    escalate_after_seconds: Mapped[int | None] = mapped_column(Integer, doc="unanswered this long after due: escalate")
    completed_by: Mapped[str | None] = mapped_column(String(255))
    snoozed_until: Mapped[datetime | None] = mapped_column(doc="put off to this moment; its escalation waits too")
    snooze_reason: Mapped[str | None] = mapped_column(Text)

    case: Mapped[Case] = relationship(back_populates="tasks", lazy="raise")


class CaseEvent(Base):
    """The case's history: one row per thing that happened to it, oldest first."""

    __tablename__ = "outreach_case_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("outreach_cases.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(48), doc="opened, updated, playbook_switched, task_completed, ...")
    actor: Mapped[str | None] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]]

    case: Mapped[Case] = relationship(back_populates="events", lazy="raise")


class Timer(Base):
    """A durable timer: fires once at ``due_at`` unless cancelled (escalate a task, or check the expiry)."""

    __tablename__ = "outreach_timers"
    __table_args__ = (
        Index(
            "ix_outreach_timers_pending",
            "due_at",
            postgresql_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
            sqlite_where=text("fired_at IS NULL AND cancelled_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("outreach_cases.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str | None] = mapped_column(ForeignKey("outreach_tasks.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), doc="escalate or expire")
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    fired_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(64), doc="what firing did (escalated, answered, exhausted, ...)")
    step: Mapped[int | None] = mapped_column(Integer, doc="for nudge timers: the rung of the inaction ladder it fires")

    # Never loaded: they tell the unit of work to insert the case and the task before their timers.
    case: Mapped[Case] = relationship(lazy="raise")
    task: Mapped[Task | None] = relationship(lazy="raise")


class RotationCursor(Base):
    """Where each role's round-robin stands, so turns survive restarts."""

    __tablename__ = "outreach_rotation_cursors"

    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Subscription(Base):
    """What outreach knows of a subscription beyond its cases: the withdrawals that ended its attempts to leave.

    Cancellations and withdrawals arrive on two queues in any order; their billing versions tell which attempt a
    late diagnosis belongs to, and whether the customer had already stayed.
    """

    __tablename__ = "outreach_subscriptions"

    cancellation_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(255))
    staying_version: Mapped[int] = mapped_column(
        BigInteger, doc="billing version of the newest withdrawal (0: unknown)"
    )
    previous_staying_version: Mapped[int] = mapped_column(BigInteger, doc="the withdrawal's before it (0: none)")
    staying_reason: Mapped[str] = mapped_column(String(64))
    staying_at: Mapped[datetime] = mapped_column(doc="when the newest withdrawal was received")


class PaidInvoice(Base):
    """A subscription's newest paid invoice, kept because it can reach outreach before the withdrawal it follows
    (both travel on one queue, but redeliveries reorder them): that withdrawal's save is then verified at once."""

    __tablename__ = "outreach_paid_invoices"

    cancellation_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    paid_version: Mapped[int] = mapped_column(BigInteger, doc="billing version of the newest paid invoice")
    source_event_id: Mapped[str] = mapped_column(String(255), doc="the billing system's event that reported it")
    received_at: Mapped[datetime]


class Notification(Base):
    """An outbound notification waiting for (or done with) delivery, away from the case's transaction."""

    __tablename__ = "outreach_notifications"
    __table_args__ = (
        Index(
            "ix_outreach_notifications_pending",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), doc="slack, webhook (a team's), email or slack_dm (a person's)")
    kind: Mapped[str] = mapped_column(String(48), doc="case.opened, case.escalated, task.overdue, digest.daily, ...")
    case_id: Mapped[str | None] = mapped_column(String(36), index=True)
    body: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), doc="pending, sent or failed")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    recipient: Mapped[str | None] = mapped_column(String(320), index=True, doc="the person's email; none: a team's")
    lease_token: Mapped[str | None] = mapped_column(String(32), doc="the delivering instance's lease, while it sends")


PERSON_ROLES = ("csm", "cs_manager", "vp_customer_success", "executive_sponsor", "admin")


class Person(Base):
    """Someone who works cases on the desk (or administers it): a role, a manager, where to reach them."""

    __tablename__ = "outreach_people"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True, doc="lower case; tasks and cases name owners by it")
    name: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), index=True, doc="csm, cs_manager, vp_customer_success, ...")
    manager_id: Mapped[str | None] = mapped_column(ForeignKey("outreach_people.id", ondelete="SET NULL"), index=True)
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC", doc="IANA name")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    password_hash: Mapped[str | None] = mapped_column(String(255), doc="Argon2id; none for single sign-on only")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deactivated_at: Mapped[datetime | None]
    notify_channels: Mapped[str] = mapped_column(
        String(64), default="email,slack_dm", server_default="email,slack_dm", doc="personal channels, comma-separated"
    )
    daily_digest: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    last_digest_on: Mapped[date | None] = mapped_column(doc="the local day of the last digest sent")


class DeskSession(Base):
    """A signed-in desk session; the cookie carries its opaque id, the row only a hash of it."""

    __tablename__ = "outreach_desk_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("outreach_people.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    address: Mapped[str | None] = mapped_column(String(64))


class SignInFailure(Base):
    """A refused sign-in, counted per account and per address to slow password guessing."""

    __tablename__ = "outreach_sign_in_failures"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    address: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)


OFFER_STATUSES = ("proposed", "awaiting_approval", "applied", "failed", "rejected")


class Offer(Base):
    """A save offer on a case: proposed with its preview and cost, applied through the billing API (at once within
    the proposer's limit and the budget, else after an approval), failed with the vendor's message, or rejected;
    an applied one may be undone where the vendor allows."""

    __tablename__ = "outreach_offers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("outreach_cases.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str] = mapped_column(String(255), index=True)
    source: Mapped[str] = mapped_column(String(16), doc="the billing system: stripe or chargebee")
    subscription_id: Mapped[str] = mapped_column(String(255))
    offer: Mapped[str] = mapped_column(String(64), doc="the offer's name in the offers file")
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(24), index=True, doc="proposed, awaiting_approval, applied, ...")
    cost_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    preview: Mapped[str] = mapped_column(Text)
    change: Mapped[dict[str, Any]] = mapped_column(doc="the vendor's parameters fixed at the preview, sent as they are")
    proposed_by: Mapped[str] = mapped_column(String(320))
    proposed_at: Mapped[datetime]
    team: Mapped[str] = mapped_column(
        String(64), default="default", server_default="default", doc="the proposer's team, whose budget it draws on"
    )
    approval_reason: Mapped[str | None] = mapped_column(Text, doc="why it waits for approval")
    approver_roles: Mapped[str | None] = mapped_column(String(255), doc="comma-separated roles that may approve it")
    decided_by: Mapped[str | None] = mapped_column(String(320))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    applied_by: Mapped[str | None] = mapped_column(String(320))
    applied_at: Mapped[datetime | None] = mapped_column(index=True)
    verified_at: Mapped[datetime | None] = mapped_column(doc="read back from the billing system and holding")
    confirmed_at: Mapped[datetime | None] = mapped_column(
        doc="when the billing system's webhook of the change arrived (the cancellation withdrawn, for a kept one)"
    )
    failure: Mapped[str | None] = mapped_column(Text, doc="the billing system's message")
    new_subscription_id: Mapped[str | None] = mapped_column(
        String(255), doc="the subscription a reactivation made, when the vendor makes a new one (Stripe)"
    )
    undone_by: Mapped[str | None] = mapped_column(String(320))
    undone_at: Mapped[datetime | None]
