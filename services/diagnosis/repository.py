"""Diagnosis's queries: cancellations, signals, the history of attempts, diagnosis versions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis.models import AccountSignal, Attempt, Cancellation, Diagnosis
from shared.db import insert_if_new, utcnow


async def cancellation_by_id(session: AsyncSession, cancellation_id: str) -> Cancellation | None:
    return (
        await session.execute(select(Cancellation).where(Cancellation.cancellation_id == cancellation_id))
    ).scalar_one_or_none()


async def claim_cancellation(session: AsyncSession, *, cancellation_id: str, account_id: str, status: str,
                             state_version: int, details: dict[str, Any]) -> tuple[Cancellation, bool]:
    """The cancellation's row, locked, created from the given values if new; True when it was created.

    Insert-or-ignore first, so two reports of one cancellation handled at once never collide on the unique key.
    """
    created = await insert_if_new(
        session, Cancellation.__table__, returning=Cancellation.__table__.c.id, cancellation_id=cancellation_id,
        account_id=account_id, status=status, state_version=state_version, details=details, received_at=utcnow(),
    )
    row = (
        await session.execute(
            select(Cancellation).where(Cancellation.cancellation_id == cancellation_id)
            .with_for_update().execution_options(populate_existing=True)
        )
    ).scalar_one()
    return row, created is not None


async def open_cancellations(session: AsyncSession, account_id: str) -> list[Cancellation]:
    """The account's cancellations still worth diagnosing (not withdrawn, not closed)."""
    return list((
        await session.execute(
            select(Cancellation).where(Cancellation.account_id == account_id, Cancellation.status == "open")
            .order_by(Cancellation.id)
        )
    ).scalars())


async def signal_rows(session: AsyncSession, account_id: str) -> dict[str, AccountSignal]:
    rows = (await session.execute(select(AccountSignal).where(AccountSignal.account_id == account_id))).scalars()
    return {row.kind: row for row in rows}


async def signals_of(session: AsyncSession, account_id: str) -> tuple[dict[str, dict[str, Any]], int]:
    """The account's signal groups and the newest signal version (0 when nothing was sent)."""
    rows = await signal_rows(session, account_id)
    version = max((row.signal_version for row in rows.values()), default=0)
    return {kind: row.values for kind, row in rows.items()}, version


async def attempts_of(session: AsyncSession, account_id: str) -> list[Attempt]:
    return list((
        await session.execute(
            select(Attempt).where(Attempt.account_id == account_id).order_by(Attempt.performed_at, Attempt.id)
        )
    ).scalars())


async def next_version(session: AsyncSession, cancellation_id: str) -> int:
    latest = (
        await session.execute(select(func.max(Diagnosis.version)).where(Diagnosis.cancellation_id == cancellation_id))
    ).scalar_one_or_none()
    return (latest or 0) + 1


async def latest_diagnosis(session: AsyncSession, account_id: str) -> Diagnosis | None:
    return (
        await session.execute(
            select(Diagnosis).where(Diagnosis.account_id == account_id)
            .order_by(Diagnosis.created_at.desc(), Diagnosis.version.desc()).limit(1)
        )
    ).scalar_one_or_none()


async def seen_signal_version(session: AsyncSession, cancellation: Cancellation) -> int:
    """The signal version the latest diagnosis of a cancellation was made with (0 when none)."""
    explanation = (
        await session.execute(
            select(Diagnosis.explanation).where(Diagnosis.cancellation_id == cancellation.cancellation_id)
            .order_by(Diagnosis.version.desc()).limit(1)
        )
    ).scalar_one_or_none()
    return int((explanation or {}).get("signal_version") or 0)
