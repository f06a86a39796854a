"""Intake's tables: every webhook received (the inbox), the cancellations it knows, its outbox."""

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
