"""Queue notifications with the case work; a background loop delivers them, so a dead endpoint blocks nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.outreach import repository
from services.outreach.clock import Clock
from services.outreach.models import Case, Notification
from services.outreach.notify.base import DeliveryFailed, Message, Notifier
from services.outreach.policy import Policy
from shared import metrics
from shared.db import transaction
from shared.logs import get_logger

log = get_logger("outreach.notifications")
LEASE = timedelta(minutes=2)


def wants(channel: str, *, kind: str, case: Case, policy: Policy) -> bool:
    """Slack hears about high-priority new cases and every escalation; the webhook hears everything."""
    if channel == "slack":
        return kind == "case.escalated" or (kind == "case.opened" and case.priority >= policy.high_priority)
    return True


def enqueue(session: AsyncSession, *, case: Case, kind: str, policy: Policy, clock: Clock, **detail: Any) -> None:
    """Queue one notification per interested channel, in the caller's transaction."""
    now = clock.now()
    body = {
        "type": kind,
        "case_id": case.id,
        "cancellation_id": case.cancellation_id,
        "account_id": case.account_id,
        "customer_name": case.customer_name,
        "status": case.status,
        "root_cause": case.root_cause,
        "priority": case.priority,
        "mrr_minor": case.mrr_minor,
        "currency": case.currency,
        "owner": case.owner,
        "occurred_at": now.isoformat(),
        **detail,
    }
    for channel in policy.channels:
        if wants(channel, kind=kind, case=case, policy=policy):
            session.add(
                Notification(
                    id=str(uuid.uuid4()),
                    channel=channel,
                    kind=kind,
                    case_id=case.id,
                    body=body,
                    status="pending",
                    attempts=0,
                    next_attempt_at=now,
                    locked_until=None,
                    last_error=None,
                    created_at=now,
                    sent_at=None,
                )
            )


async def _claim(sessions: async_sessionmaker[AsyncSession], *, clock: Clock, batch: int) -> list[Notification]:
    now = clock.now()
    async with transaction(sessions) as session:
        return await repository.lease_due_notifications(session, now=now, until=now + LEASE, limit=batch)


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    *,
    notifiers: dict[str, Notifier],
    clock: Clock,
    rounds: int,
    backoff: timedelta,
    batch: int = 50,
) -> int:
    """Deliver pending notifications outside any case transaction; returns how many were sent."""
    sent = 0
    for notification in await _claim(sessions, clock=clock, batch=batch):
        notifier = notifiers.get(notification.channel)
        error: str | None = "channel is not configured" if notifier is None else None
        if notifier is not None:
            try:
                await notifier.deliver(Message(id=notification.id, kind=notification.kind, body=notification.body))
            except DeliveryFailed as failure:
                error = str(failure)
        attempts = notification.attempts + 1
        values: dict[str, Any] = {"attempts": attempts, "locked_until": None}
        if error is None:
            values |= {"status": "sent", "sent_at": clock.now(), "last_error": None}
            metrics.NOTIFICATIONS_SENT.labels(notification.channel).inc()
            sent += 1
        elif attempts >= rounds:
            values |= {"status": "failed", "last_error": error[:500]}
            metrics.NOTIFICATIONS_FAILED.labels(notification.channel).inc()
            log.warning(
                "outreach.notification.failed",
                channel=notification.channel,
                kind=notification.kind,
                notification_id=notification.id,
                error=error,
            )
        else:
            values |= {"next_attempt_at": clock.now() + backoff * (2**attempts), "last_error": error[:500]}
            log.info(
                "outreach.notification.retry_later",
                channel=notification.channel,
                notification_id=notification.id,
                attempts=attempts,
                error=error,
            )
        async with transaction(sessions) as session:
            await repository.update_notification(session, notification.id, **values)
    return sent
