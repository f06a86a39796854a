"""Diagnosis's tables: the cancellations it diagnoses, each diagnosis version, its outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import Base
from shared.outbox import handled_table, outbox_table

PrimaryKey = BigInteger().with_variant(Integer, "sqlite")

outbox = outbox_table("diagnosis")
handled = handled_table("diagnosis")


class Cancellation(Base):
    """A cancellation as intake reported it; the input of every diagnosis version."""

    __tablename__ = "diagnosis_cancellations"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    cancellation_id: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(32), doc="open, withdrawn or closed")
    state_version: Mapped[int] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class Diagnosis(Base):
    """One version of the diagnosis of one cancellation, with its whole explanation."""

    __tablename__ = "diagnosis_diagnoses"
    __table_args__ = (UniqueConstraint("cancellation_id", "version"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    cancellation_id: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int]
    symptom: Mapped[str] = mapped_column(String(64))
    root_cause: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    explanation: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AccountSignal(Base):
    """One group of signals about an account (usage, onboarding, ...), as last reported."""

    __tablename__ = "diagnosis_account_signals"
    __table_args__ = (UniqueConstraint("account_id", "kind"),)

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(32))
    values: Mapped[dict[str, Any]]
    observed_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(100))
    signal_version: Mapped[int]
    updated_at: Mapped[datetime]


class Attempt(Base):
    """Something already tried for an account: an intervention, or a case that closed."""

    __tablename__ = "diagnosis_attempts"

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    attempt_id: Mapped[str] = mapped_column(String(255), unique=True)
    account_id: Mapped[str] = mapped_column(String(255), index=True)
    cancellation_id: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(200))
    result: Mapped[str] = mapped_column(String(64))
    playbook: Mapped[str | None] = mapped_column(String(64))
    whole_playbook: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    performed_at: Mapped[datetime]


class ConfirmedCase(Base):
    """A closed case whose root cause the person who closed it confirmed: what diagnosis learns from.

    ``facts`` keeps what the diagnosis saw (the stated reason, the account's signals and attempts), so the rules
    can be scored on real cases later (``make eval FROM_DB=1``).
    """

    __tablename__ = "diagnosis_confirmed_cases"
    __table_args__ = (Index("ix_diagnosis_confirmed_cases_confirmed_root_cause", "confirmed_root_cause", "playbook"),)

    id: Mapped[int] = mapped_column(PrimaryKey, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(String(255), unique=True)
    cancellation_id: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[str] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(32))
    diagnosed_root_cause: Mapped[str | None] = mapped_column(String(64))
    confirmed_root_cause: Mapped[str] = mapped_column(String(64))
    playbook: Mapped[str | None] = mapped_column(String(64))
    facts: Mapped[dict[str, Any]]
    closed_at: Mapped[datetime]
