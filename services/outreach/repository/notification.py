"""Notifications: leased to one sender, renewed, finished, added once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import Notification
from shared.db import insert_ignoring_conflicts, is_postgres, rows_matched


async def lease_due_notifications(
    session: AsyncSession, *, now: datetime, until: datetime, token: str, limit: int
) -> list[tuple[Notification, bool]]:
    """Pending notifications due by ``now`` and not leased, leased to ``token`` until ``until`` (others' skipped).

    Each with whether it may have reached its endpoint already: it was tried before, or an earlier lease on it
    ended without a result (its holder stopped mid-send).
    """
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
    claimed = [
        (notification, notification.attempts > 0 or notification.lease_token is not None)
        for notification in (await session.execute(query)).scalars()
    ]
    for notification, _ in claimed:
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
