"""Intake's tables: every webhook received (the inbox), the cancellations it knows, its outbox, reconciliation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.outbox import outbox_table

PrimaryKey = BigInteger().with_variant(Integer, "sqlite")

outbox = outbox_table("intake")


class WebhookEvent(Base):
    """One delivery accepted from a billing system or a tool, de-duplicated by (source, external id)."""

    __tablename__ = "intake_webhook_events"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(32), doc="accepted, ignored or superseded")
    outcome_reason: Mapped[str | None] = mapped_column(Text)
    published_type: Mapped[str | None] = mapped_column(String(64))
    correlation_id: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]
    received_via: Mapped[str] = mapped_column(
        String(16), server_default="webhook", doc="webhook, api or reconciliation: how the event reached Brink"
    )


class SubscriptionState(Base):
    """The newest state seen per subscription, so a late older event never undoes a newer one."""

    __tablename__ = "intake_subscription_states"
    __table_args__ = (UniqueConstraint("source", "subscription_id"),)

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    subscription_id: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(32), doc="scheduled, cancelled, payment_failed or active")
    state_version: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class ReconcileCursor(Base):
    """How far the reconciler has read a billing system's events: it resumes here after a restart."""

    __tablename__ = "intake_reconcile_cursors"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    read_until: Mapped[datetime] = mapped_column(doc="events that occurred before this were all read")
    last_success_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ReconcileLease(Base):
    """Which intake instance runs the reconciler: the holder renews it, another takes it once it expires."""

    __tablename__ = "intake_reconcile_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime]
