"""The background loops: fire due escalation timers, deliver queued notifications, refresh the gauges."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.outreach import service
from services.outreach.clock import Clock
from services.outreach.digest import send_digests
from services.outreach.escalation import Fired, fire_due_timers
from services.outreach.models import CASE_STATUSES
from services.outreach.notifications import deliver_due
from services.outreach.notify.base import Notifier
from services.outreach.policy import Policy
from shared import metrics
from shared.db import transaction
from shared.logs import get_logger
from shared.runtime import StuckWork

log = get_logger("outreach.scheduler")
MAX_BACKOFF_SECONDS = 60.0
LATE_TIMER_GRACE_SECONDS = 120.0


class Scheduler:
    """Drives durable timers and the notification queue; safe to run in several instances at once."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        policy: Policy,
        clock: Clock,
        notifiers: dict[str, Notifier],
        poll_seconds: float,
        gauge_seconds: float = 60.0,
        notify_rounds: int,
        notify_backoff: timedelta,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.policy = policy
        self.clock = clock
        self.notifiers = notifiers
        self.poll_seconds = poll_seconds
        self.gauge_seconds = gauge_seconds
        self.notify_rounds = notify_rounds
        self.notify_backoff = notify_backoff
        self.after_commit = after_commit

    async def fire_timers(self, *, limit: int = 500) -> list[Fired]:
        """Fire due timers, one transaction each; escalations are counted only once committed."""
        fired: list[Fired] = []
        while len(fired) < limit:
            async with transaction(self.sessions) as session:
                one = await fire_due_timers(session, clock=self.clock, policy=self.policy)
            if not one:
                break
            fired += one
            for item in one:
                if item.rung:
                    metrics.ESCALATIONS_FIRED.labels(item.rung).inc()
        if fired and self.after_commit is not None:
            self.after_commit()
        return fired

    async def deliver_notifications(self) -> int:
        """One pass over the notification queue."""
        return await deliver_due(
            self.sessions,
            notifiers=self.notifiers,
            clock=self.clock,
            rounds=self.notify_rounds,
            backoff=self.notify_backoff,
        )

    async def send_digests(self) -> int:
        """Queue the daily digests whose morning has come."""
        return await send_digests(self.sessions, policy=self.policy, clock=self.clock)

    async def refresh_gauges(self) -> None:
        async with transaction(self.sessions) as session:
            counts = await service.count_by_status(session)
            overdue = await service.count_overdue(session, now=self.clock.now())
        async with self.sessions() as session:
            await service.reclaim_counted_changes(session)
        for status in CASE_STATUSES:
            metrics.CASES.labels(status).set(counts.get(status, 0))
        metrics.TASKS_OVERDUE.set(overdue)

    async def check_timers(self) -> None:
        """Readiness: fails when a timer is late by far more than the poll interval (no scheduler running)."""
        now = self.clock.now()
        async with transaction(self.sessions) as session:
            oldest = await service.oldest_late_timer(session, now=now)
        if isinstance(oldest, str):  # SQLite aggregates lose the column type
            oldest = datetime.fromisoformat(oldest)
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)
        late = (now - oldest).total_seconds() if oldest else 0.0
        if late > LATE_TIMER_GRACE_SECONDS + 10 * self.poll_seconds:
            raise StuckWork(f"an escalation timer is {timedelta(seconds=int(late))} late: is the scheduler running?")

    async def run_timers(self) -> None:
        """Forever: fire due timers and queue digests; a failing pass is logged and retried later."""
        await self._forever(self.fire_timers, self.send_digests, name="timers")

    async def run_gauges(self) -> None:
        """Forever: recount cases and overdue tasks. Apart from the timers, and once a minute by default, because
        the counts read the overdue tasks and the case counts' recorded changes: cheap, but not nothing under
        load."""
        await self._forever(self.refresh_gauges, name="gauges", every=self.gauge_seconds)

    async def run_notifications(self) -> None:
        """Forever: deliver due notifications."""
        await self._forever(self.deliver_notifications, name="notifications")

    async def _forever(self, *passes: Callable[[], Awaitable[object]], name: str, every: float | None = None) -> None:
        interval = every or self.poll_seconds
        delay = interval
        while True:
            try:
                for one_pass in passes:
                    await one_pass()
                delay = interval
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the database may be down: keep the loop alive and back off
                log.warning(
                    "outreach.scheduler.pass_failed",
                    loop=name,
                    error=str(error) or repr(error),
                    retry_in=round(delay, 2),
                )
                delay = min(delay * 2, max(MAX_BACKOFF_SECONDS, interval))
            await asyncio.sleep(delay)
