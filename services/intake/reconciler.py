"""The reconciler: finds the cancellations whose webhooks never arrived and records them through the one way in.

Each billing system keeps its events listable for a while (Stripe 30 days). Every
``BRINK_RECONCILE_INTERVAL_SECONDS`` one intake instance (the holder of a lease row) lists the
cancellation-related events since its cursor, less an overlap, and records every one exactly as a webhook is
recorded (``service.record_vendor_event``): a webhook that did arrive makes it a duplicate, one that did not makes
it ``accepted``, marked ``received_via = reconciliation``. The cursor moves only after a listing is read to the
end, so a billing system that is down or rate-limiting costs a later run, never an event.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake import repository
from services.intake.chargebee_mapping import CHARGEBEE_MAPPED_TYPES
from services.intake.models import ReconcileCursor
from services.intake.service import Deliveries, Recorded, UnreadableEvent, record_vendor_event
from services.intake.stripe_mapping import STRIPE_MAPPED_TYPES
from shared import metrics
from shared.billing.base import BillingAuthError, BillingConnection, BillingError
from shared.db import transaction, utcnow
from shared.logs import get_logger

log = get_logger("services.intake.reconciler")

LEASE = "reconciler"
# The event types each source's mapping reads: the reconciler lists exactly what a webhook could have brought.
MAPPED_TYPES: dict[str, frozenset[str]] = {"stripe": STRIPE_MAPPED_TYPES, "chargebee": CHARGEBEE_MAPPED_TYPES}


@dataclass
class Summary:
    """What one listing found."""

    source: str
    read: int = 0
    already_known: int = 0
    recovered: int = 0
    superseded: int = 0
    ignored: int = 0
    unreadable: int = 0
    recovered_types: dict[str, int] = field(default_factory=dict)

    def count(self, recorded: Recorded) -> None:
        self.read += 1
        if recorded.outcome == "duplicate":
            self.already_known += 1
        elif recorded.outcome == "accepted":
            self.recovered += 1
            self.recovered_types[recorded.event_type] = self.recovered_types.get(recorded.event_type, 0) + 1
        elif recorded.outcome == "superseded":
            self.superseded += 1
        else:
            self.ignored += 1


class LeaseLost(Exception):
    """Another instance holds the reconciler's lease now; this one stops its run."""


async def reconcile_source(
    connection: BillingConnection,
    *,
    deliveries: Deliveries,
    since: datetime,
    after_accepted: Callable[[], None] | None = None,
    on_event: Callable[[Summary], Awaitable[None]] | None = None,
) -> Summary:
    """Record every cancellation-related event since ``since`` through the webhook path; what it found."""
    source = connection.source
    summary = Summary(source)
    async for event in connection.list_events(types=sorted(MAPPED_TYPES[source]), since=since):
        try:
            recorded = await record_vendor_event(
                deliveries,
                source=source,
                event=event,
                correlation_id=str(uuid.uuid4()),
                received_via="reconciliation",
                after_accepted=after_accepted,
                unreadable_is_ignored=True,
            )
        except UnreadableEvent as unreadable:  # no id or type: nothing to record it under
            summary.read += 1
            summary.unreadable += 1
            log.warning("intake.reconcile.unreadable", source=source, reason=str(unreadable))
            continue
        summary.count(recorded)
        metrics.RECONCILE_EVENTS.labels(source=source, outcome=recorded.outcome).inc()
        if recorded.outcome == "accepted":
            metrics.RECONCILE_RECOVERED.labels(source=source, event_type=recorded.event_type).inc()
            log.warning(
                "intake.reconcile.recovered", source=source, event_id=recorded.event_id, event_type=recorded.event_type
            )
        if on_event is not None:
            await on_event(summary)
    return summary


def instance_name() -> str:
    """Who holds the lease, as an operator would look for it: host, process, and a suffix unique to this start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Reconciler:
    """The background worker: takes its turn through the lease, runs each source when due, keeps the gauges."""

    def __init__(
        self,
        *,
        connections: Mapping[str, BillingConnection],
        deliveries: Deliveries,
        sessions: async_sessionmaker[AsyncSession],
        interval_seconds: float,
        overlap_seconds: float,
        first_days: float,
        lease_seconds: float,
        after_accepted: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.connections = dict(connections)
        self.deliveries = deliveries
        self.sessions = sessions
        self.interval = timedelta(seconds=interval_seconds)
        self.overlap = timedelta(seconds=overlap_seconds)
        self.first_reach = timedelta(days=first_days)
        self.lease = timedelta(seconds=lease_seconds)
        self.after_accepted = after_accepted
        self.clock = clock
        self.holder = instance_name()
        self.started_at = clock()
        self.holds_turn: bool | None = None  # None until the first look
        self._lease_renewed_at: datetime | None = None
        self._next_attempt: dict[str, datetime] = {}
        self._failures: dict[str, int] = {}

    @property
    def tick_seconds(self) -> float:
        """How often the worker looks: often enough to renew the lease well before it expires."""
        return min(self.interval, self.lease / 3).total_seconds()

    async def run(self) -> None:
        """Until cancelled: take the turn, run what is due, wait."""
        log.info("intake.reconcile.started", sources=sorted(self.connections), holder=self.holder)
        try:
            while True:
                try:
                    await self.tick()
                except Exception as problem:  # the database briefly away: the next tick tries again
                    log.warning("intake.reconcile.tick_failed", error=str(problem) or repr(problem))
                await asyncio.sleep(self.tick_seconds)
        finally:
            await self.release()

    async def tick(self) -> None:
        """One look: refresh the gauges; if this instance holds the turn, run every source that is due."""
        cursors = await self.refresh_gauges()
        if not await self.take_turn():
            return
        now = self.clock()
        for source in self.connections:
            cursor = cursors.get(source)
            ran_recently = cursor is not None and cursor.updated_at + self.interval > now
            if ran_recently or self._next_attempt.get(source, now) > now:
                continue
            await self.run_source(source)

    async def take_turn(self) -> bool:
        now = self.clock()
        async with transaction(self.sessions) as session:
            held = await repository.take_lease(session, name=LEASE, holder=self.holder, now=now, until=now + self.lease)
        self._lease_renewed_at = now if held else None
        if held and not self.holds_turn:
            log.info("intake.reconcile.turn_taken", holder=self.holder)
        self.holds_turn = held
        return held

    async def keep_turn(self, _summary: Summary) -> None:
        """During a long listing, renew the lease before it can expire; stop if another instance has it."""
        if self._lease_renewed_at is not None and self.clock() - self._lease_renewed_at < self.lease / 3:
            return
        if not await self.take_turn():
            raise LeaseLost(f"another intake instance holds the {LEASE} lease")

    async def release(self) -> None:
        try:
            async with transaction(self.sessions) as session:
                await repository.release_lease(session, name=LEASE, holder=self.holder)
        except Exception as problem:  # shutting down with the database away: the lease expires by itself
            log.info("intake.reconcile.release_failed", error=str(problem) or repr(problem))

    async def run_source(self, source: str) -> Summary | None:
        """One listing of ``source`` from its cursor (less the overlap); the cursor moves only if it completes."""
        connection = self.connections[source]
        started = self.clock()
        async with self.sessions() as session:
            cursor = await repository.reconcile_cursor(session, source)
        since = cursor.read_until - self.overlap if cursor is not None else started - self.first_reach
        try:
            summary = await reconcile_source(
                connection,
                deliveries=self.deliveries,
                since=since,
                after_accepted=self.after_accepted,
                on_event=self.keep_turn,
            )
        except BillingAuthError as refused:
            self._failed(source, "key_refused")
            if self._failures[source] == 1:  # one clear line per outage, naming the setting and never the key
                log.error(
                    "intake.reconcile.key_refused",
                    source=source,
                    setting=refused.setting,
                    status=refused.status,
                    detail=f"{refused.setting} was refused by {source}; reconciliation of {source} is paused, "
                    "webhooks keep flowing",
                )
            return None
        except (BillingError, LeaseLost) as failed:
            self._failed(source, "unavailable" if isinstance(failed, BillingError) else "lease_lost")
            log.warning("intake.reconcile.failed", source=source, error=str(failed), retry_in=self._retry_in(source))
            return None
        except Exception as failed:  # the database away while recording: the same backoff, the cursor stays
            self._failed(source, "error")
            log.warning(
                "intake.reconcile.failed",
                source=source,
                error=str(failed) or repr(failed),
                retry_in=self._retry_in(source),
            )
            return None
        async with transaction(self.sessions) as session:
            await repository.save_reconcile_cursor(session, source=source, read_until=started)
        self._failures.pop(source, None)
        self._next_attempt.pop(source, None)
        log.info(
            "intake.reconcile.done",
            source=source,
            since=since.isoformat(),
            read=summary.read,
            already_known=summary.already_known,
            recovered=summary.recovered,
        )
        return summary

    def _failed(self, source: str, reason: str) -> None:
        metrics.RECONCILE_FAILURES.labels(source=source, reason=reason).inc()
        self._failures[source] = self._failures.get(source, 0) + 1
        self._next_attempt[source] = self.clock() + timedelta(seconds=self._retry_in(source))

    def _retry_in(self, source: str) -> float:
        """Back off after failures: a tick, then doubling, never longer than the interval."""
        failures = self._failures.get(source, 1)
        return min(self.interval.total_seconds(), self.tick_seconds * 2 ** (failures - 1))

    async def refresh_gauges(self) -> dict[str, ReconcileCursor]:
        """Every instance reports the cursors from the database, so any of them answers for the reconciler."""
        async with self.sessions() as session:
            cursors = {cursor.source: cursor for cursor in await repository.reconcile_cursors(session)}
        now = self.clock()
        for source in self.connections:
            cursor = cursors.get(source)
            read_until = cursor.read_until if cursor is not None else self.started_at
            last_success = cursor.last_success_at if cursor is not None and cursor.last_success_at else self.started_at
            metrics.RECONCILE_LAG.labels(source=source).set(max((now - read_until).total_seconds(), 0.0))
            metrics.RECONCILE_LAST_SUCCESS.labels(source=source).set(last_success.timestamp())
        return cursors
