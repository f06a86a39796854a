"""Outreach's tables: cases, their tasks, and its outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from shared.db import Base
from shared.outbox import handled_table, outbox_table

outbox = outbox_table("outreach")
handled = handled_table("outreach")


class Case(Base):
    """One cancellation being worked, from the first diagnosis to an ending."""

    __tablename__ = "outreach_cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cancellation_id: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[str] = mapped_column(String(255), index=True)
    customer_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), index=True, doc="open, saved, lost or moved_on")
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

    tasks: Mapped[list[Task]] = relationship(back_populates="case", lazy="raise", order_by="Task.position")


class Task(Base):
    """One step of a playbook, owned by a person, due at a time."""

    __tablename__ = "outreach_tasks"

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

    case: Mapped[Case] = relationship(back_populates="tasks", lazy="raise")
