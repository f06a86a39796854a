"""Queue notifications with the case work; a background loop delivers them, so a dead endpoint blocks nothing."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
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
from shared.ids import new_id
from shared.logs import get_logger

log = get_logger("outreach.notifications")
LEASE = timedelta(minutes=2)
# Personal notification ids are name-based UUIDs in this namespace: the same announcement gets the same id.
NOTIFICATION_IDS = uuid.UUID("6f1d8c1e-4b7a-4c55-9a53-0d6b1f0e7a21")
PERSONAL_CHANNELS = ("email", "slack_dm")


@dataclass(frozen=True)
class Recipient:
    """A person to tell, and how they chose to be told."""

    email: str
    name: str
    time_zone: str = "UTC"
    slack_user_id: str | None = None
    channels: tuple[str, ...] = PERSONAL_CHANNELS

    def as_body(self) -> dict[str, Any]:
        """The recipient as the notification body carries it."""
        return {
            "email": self.email,
            "name": self.name,
            "time_zone": self.time_zone,
            "slack_user_id": self.slack_user_id,
        }


def wants(channel: str, *, kind: str, case: Case, policy: Policy) -> bool:
    """Slack hears about high-priority new cases and every escalation; the webhook hears everything.

    Personal channels hear only what is addressed to a person (``enqueue_personal``).
    """
    if channel in PERSONAL_CHANNELS:
        return False
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
                    id=new_id(),
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


async def enqueue_personal(
    session: AsyncSession,
    *,
    kind: str,
    to: Recipient,
    key: str,
    channels: tuple[str, ...],
    clock: Clock,
    case: Case | None = None,
    **detail: Any,
) -> int:
    """Queue one notification per channel the person chose (and outreach has), in the caller's transaction.

    Ids derive from ``key`` (what is announced), the person and the channel, so announcing the same thing twice
    queues nothing more. Returns how many channels were chosen.
    """
    now = clock.now()
    body: dict[str, Any] = {"type": kind, "occurred_at": now.isoformat(), "to": to.as_body(), **detail}
    if case is not None:
        body |= {
            "case_id": case.id,
            "account_id": case.account_id,
            "customer_name": case.customer_name,
            "root_cause": case.root_cause,
            "mrr_minor": case.mrr_minor,
            "currency": case.currency,
        }
    chosen = [channel for channel in to.channels if channel in channels]
    await repository.add_notifications_once(
        session,
        [
            {
                "id": str(uuid.uuid5(NOTIFICATION_IDS, f"{key}|{to.email}|{channel}")),
                "channel": channel,
                "kind": kind,
                "case_id": case.id if case else None,
                "body": body,
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "recipient": to.email,
            }
            for channel in chosen
        ],
    )
    return len(chosen)


async def _claim(
    sessions: async_sessionmaker[AsyncSession], *, clock: Clock, token: str, lease: timedelta, batch: int
) -> list[tuple[Notification, bool]]:
    now = clock.now()
    async with transaction(sessions) as session:
        return await repository.lease_due_notifications(session, now=now, until=now + lease, token=token, limit=batch)


async def _renew_leases(
    sessions: async_sessionmaker[AsyncSession], *, clock: Clock, token: str, lease: timedelta
) -> None:
    """While this instance sends, keep its leases alive, so no other instance takes a notification it holds."""
    while True:
        await asyncio.sleep(lease.total_seconds() / 4)
        async with transaction(sessions) as session:
            await repository.renew_notification_leases(session, token=token, until=clock.now() + lease)


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    *,
    notifiers: dict[str, Notifier],
    clock: Clock,
    rounds: int,
    backoff: timedelta,
    batch: int = 50,
    lease: timedelta = LEASE,
) -> int:
    """Deliver pending notifications outside any case transaction; returns how many were sent.

    Each instance leases what it sends and renews the leases while sending; a result is recorded only while the
    lease is still held, so a notification is delivered by one instance, once.
    """
    token = uuid.uuid4().hex
    claimed = await _claim(sessions, clock=clock, token=token, lease=lease, batch=batch)
    if not claimed:
        return 0
    renewing = asyncio.create_task(_renew_leases(sessions, clock=clock, token=token, lease=lease))
    try:
        sent = 0
        for notification, in_doubt in claimed:
            sent += await _deliver_one(
                sessions,
                notification,
                in_doubt=in_doubt,
                notifiers=notifiers,
                clock=clock,
                rounds=rounds,
                backoff=backoff,
                token=token,
            )
        return sent
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing


async def _deliver_one(
    sessions: async_sessionmaker[AsyncSession],
    notification: Notification,
    *,
    in_doubt: bool,
    notifiers: dict[str, Notifier],
    clock: Clock,
    rounds: int,
    backoff: timedelta,
    token: str,
) -> int:
    """Send one leased notification and record the result while the lease holds; 1 when it was sent."""
    notifier = notifiers.get(notification.channel)
    error: str | None = "channel is not configured" if notifier is None else None
    asked_to_wait = timedelta(0)
    if notifier is not None:
        try:
            await notifier.deliver(
                Message(id=notification.id, kind=notification.kind, body=notification.body, in_doubt=in_doubt)
            )
        except DeliveryFailed as failure:
            error = str(failure)
            asked_to_wait = timedelta(seconds=failure.retry_after or 0)
    attempts = notification.attempts + 1
    values: dict[str, Any] = {"attempts": attempts}
    if error is None:
        values |= {"status": "sent", "sent_at": clock.now(), "last_error": None}
    elif attempts >= rounds:
        values |= {"status": "failed", "last_error": error[:500]}
    else:
        # Never sooner than a rate-limited endpoint asked for.
        wait = max(backoff * (2**attempts), asked_to_wait)
        values |= {"next_attempt_at": clock.now() + wait, "last_error": error[:500]}
    async with transaction(sessions) as session:
        held = await repository.finish_notification(session, notification.id, token=token, **values)
    details = {"channel": notification.channel, "kind": notification.kind, "notification_id": notification.id}
    if not held:
        log.warning("outreach.notification.lease_lost", **details, error=error)
        return 0
    if error is None:
        metrics.NOTIFICATIONS_SENT.labels(notification.channel).inc()
        return 1
    if attempts >= rounds:
        metrics.NOTIFICATIONS_FAILED.labels(notification.channel).inc()
        log.warning("outreach.notification.failed", **details, error=error)
    else:
        log.info("outreach.notification.retry_later", **details, attempts=attempts, error=error)
    return 0
