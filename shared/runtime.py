"""A service process's moving parts: database, broker, outbox relay, consumers, background loops."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared import metrics
from shared.consumer import Batched, Consumer, Handler
from shared.db import make_engine, make_sessionmaker, ping, transaction, utcnow
from shared.logs import get_logger
from shared.messaging import Broker, BrokerUnavailable, QueueSpec
from shared.outbox import OutboxRelay, outbox_backlog, wake_after_commits_that_stage
from shared.retention import Expiry, RetentionWorker, handled_message_ids, sent_outbox_rows
from shared.settings import BrinkSettings, database_location

if TYPE_CHECKING:
    from fastapi import FastAPI

log = get_logger("shared.runtime")

BROKER_HINT = "start it with 'rabbitmq-server -detached' (or 'systemctl start rabbitmq-server'), or set BRINK_AMQP_URL"


class StuckWork(RuntimeError):
    pass


class Runtime:
    """Owns the connections of one service process; started and stopped by the app's lifespan."""

    def __init__(
        self,
        *,
        service: str,
        settings: BrinkSettings,
        outbox: Table | None = None,
        handled: Table | None = None,
        engine: AsyncEngine | None = None,
        expiring: tuple[Expiry, ...] = (),
    ) -> None:
        self.service = service
        self.settings = settings
        self.engine = engine or make_engine(settings.database_url.get_secret_value())
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self.engine)
        self.broker = Broker(settings.amqp_url.get_secret_value())
        self.outbox = outbox
        self.handled = handled
        self.relay = (
            OutboxRelay(
                sessions=self.sessions,
                table=outbox,
                broker=self.broker,
                poll_seconds=settings.outbox_poll_seconds,
                gather_seconds=settings.outbox_gather_seconds,
            )
            if outbox is not None
            else None
        )
        if self.relay is not None:
            wake_after_commits_that_stage(self.sessions, self.relay.wake)
        self.retention = RetentionWorker(
            service=service,
            engine=self.engine,
            expiries=(
                *((sent_outbox_rows(outbox),) if outbox is not None else ()),
                *((handled_message_ids(handled),) if handled is not None else ()),
                *expiring,
            ),
            max_age=timedelta(days=settings.retention_days),
            interval_seconds=settings.retention_interval_seconds,
        )
        self.consumers: list[Consumer] = []
        self._loops: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._metrics_task: asyncio.Task[None] | None = None
        self._metrics_stop = asyncio.Event()

    def consume(self, name: str, handlers: dict[str, Handler | Batched]) -> Consumer:
        """Register a consumer queue named ``<service>.<name>`` for the given event types."""
        assert self.handled is not None, "a consuming service needs a handled-messages table"
        spec = QueueSpec(
            name=f"{self.service}.{name}",
            routing_keys=tuple(handlers),
            retry_delays=tuple(self.settings.retry_delays),
            delivery_limit=self.settings.delivery_limit,
        )
        consumer = Consumer(
            spec=spec,
            handlers=handlers,
            broker=self.broker,
            sessions=self.sessions,
            handled=self.handled,
            prefetch=self.settings.prefetch,
            batch_size=self.settings.consumer_batch_size,
            linger_seconds=self.settings.consumer_linger_ms / 1000,
        )
        self.consumers.append(consumer)
        return consumer

    def run_in_background(self, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._loops.append(loop)

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake()

    async def start(self) -> None:
        await self.broker.connect()
        if not self.settings.run_workers:
            return
        for consumer in self.consumers:
            await consumer.start()
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(), name=f"{self.service}-outbox-relay"))
        self.start_metrics()
        self._tasks.append(asyncio.create_task(self.retention.run(), name=f"{self.service}-retention"))
        for loop in self._loops:
            self._tasks.append(asyncio.create_task(loop(), name=f"{self.service}-{loop.__name__}"))
        log.info("service.started", service=self.service, consumers=[c.spec.name for c in self.consumers])

    @asynccontextmanager
    async def lifespan(self, _app: object) -> AsyncIterator[None]:
        """The app's lifespan: workers run while the app serves."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def stop(self) -> None:
        await self.stop_metrics()
        for consumer in self.consumers:
            await consumer.stop()
        if self.relay is not None:
            self.relay.stop()
        self.retention.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.broker.close()
        await self.engine.dispose()

    async def check_database(self) -> None:
        await ping(self.engine)

    async def check_broker(self) -> None:
        await self.broker.check()

    async def measure_outbox(self) -> tuple[int, float]:
        """Unpublished outbox rows and the age in seconds of the oldest, also exported on /metrics."""
        assert self.outbox is not None
        async with transaction(self.sessions) as session:
            count, oldest = await outbox_backlog(session, self.outbox)
        age = max((utcnow() - oldest).total_seconds(), 0.0) if oldest else 0.0
        metrics.record_outbox_backlog(self.outbox.name, count=count, oldest_age_seconds=age)
        return count, age

    def owned_queues(self) -> list[str]:
        """Every queue this process consumes from, with its retry and dead-letter queues."""
        names: list[str] = []
        for consumer in self.consumers:
            spec = consumer.spec
            names += [spec.name, *(spec.retry_queue(n) for n in range(len(spec.retry_delays))), spec.dead_queue]
        return names

    async def refresh_metrics(self) -> None:
        """Read the outbox backlog and the owned queues' depths and consumers into the gauges."""
        if self.outbox is not None:
            await self.measure_outbox()
        if self.consumers and self.broker.is_connected:
            await metrics.refresh_queue_metrics(self.broker, self.owned_queues())

    async def metrics_loop(self) -> None:
        """Keeps the backlog and queue gauges fresh between scrapes; a failed read waits for the next turn."""
        while not self._metrics_stop.is_set():
            try:
                await self.refresh_metrics()
            except Exception as error:  # broker or database briefly away: the gauges keep their last value
                log.warning("metrics.refresh.failed", service=self.service, error=str(error) or repr(error))
            with suppress(TimeoutError):
                await asyncio.wait_for(self._metrics_stop.wait(), timeout=self.settings.metrics_refresh_seconds)

    def start_metrics(self) -> None:
        """Start refreshing the gauges in the background (``start`` does it when workers run)."""
        self._metrics_stop.clear()
        self._metrics_task = asyncio.create_task(self.metrics_loop(), name=f"{self.service}-metrics")

    async def stop_metrics(self) -> None:
        """Let the refresh finish its round rather than cancel it inside a broker call, which can hang the channel."""
        task, self._metrics_task = self._metrics_task, None
        if task is None:
            return
        self._metrics_stop.set()
        done, _pending = await asyncio.wait({task}, timeout=10)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def check_outbox(self) -> None:
        """Fails when events wait in the outbox longer than ``BRINK_OUTBOX_MAX_AGE_SECONDS``."""
        if self.outbox is None:
            return
        count, age = await self.measure_outbox()
        if age > self.settings.outbox_max_age_seconds:
            raise StuckWork(f"{count} outbox events unpublished, oldest {timedelta(seconds=int(age))} old")

    def readiness(self) -> dict[str, Callable[[], Awaitable[None]]]:
        return {"database": self.check_database, "broker": self.check_broker, "outbox": self.check_outbox}


def preflight(settings: BrinkSettings) -> None:
    """Refuse to start, with one clear line, when the broker or the database is out of reach."""

    async def check() -> None:
        broker = Broker(settings.amqp_url.get_secret_value(), connect_timeout=5)
        try:
            await broker.connect()
        finally:
            await broker.close()
        engine = make_engine(settings.database_url.get_secret_value())
        try:
            await ping(engine)
        finally:
            await engine.dispose()

    # aio-pika (and the failover, node by node) log their own connection errors; the one line below says it better.
    quieted = {name: logging.getLogger(name).level for name in ("aiormq", "aio_pika", "shared.amqp_cluster")}
    for name in quieted:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        asyncio.run(check())
    except BrokerUnavailable as error:
        print(f"brink: {error}; {BROKER_HINT}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as error:
        print(
            f"brink: the database at {database_location(settings.database_url)} is not reachable: "
            f"{str(error).splitlines()[0] if str(error) else error.__class__.__name__}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    finally:
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)


def freeze_startup_objects() -> None:
    """Take what the process built at start-up out of the garbage collector's full passes.

    A full collection walks every tracked object: with the 135,000 that importing and building a service
    leaves (modules, SQLAlchemy mappers, pydantic models) it stopped the event loop for 20 to 40 ms, under load
    every few seconds, which is a webhook's whole latency budget. Frozen, they are never walked again; what
    requests and messages allocate is collected as before. Only for serving processes: a test process that
    froze its objects would keep every earlier test's garbage.
    """
    gc.collect()
    gc.freeze()


def serve(
    app_factory: Callable[[], FastAPI],
    *,
    settings: BrinkSettings,
    port: int,
    processes: int = 1,
    factory_path: str | None = None,
) -> None:
    """Run one service with uvicorn after the preflight checks; ``processes`` > 1 share the port.

    Several processes import the app by ``factory_path`` and keep their metrics in one directory
    (Prometheus's multiprocess mode), so ``/metrics`` from any of them counts the work of all.
    """
    import uvicorn

    preflight(settings)
    if settings.niceness:
        os.nice(settings.niceness)
    if processes > 1:
        assert factory_path is not None, "several processes need the app factory's import path"
        metrics.prepare_multiprocess_directory()
        uvicorn.run(
            factory_path,
            factory=True,
            workers=processes,
            host=settings.host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
        )
        return
    app = app_factory()
    freeze_startup_objects()
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
