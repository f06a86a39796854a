"""Consuming with an idempotency guard: handled-row, effects and commit, then ack; failures retry, then dead-letter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared import metrics
from shared.acks import Acknowledgements
from shared.db import insert_many_if_new, is_database_outage, transaction, utcnow
from shared.events import Envelope, Payload, UnknownEventType
from shared.logs import bound_contextvars, get_logger
from shared.messaging import DEAD_EXCHANGE, RETRY_EXCHANGE, Broker, OutgoingMessage, QueueSpec, build_message
from shared.redaction import error_text

log = get_logger("shared.consumer")

ATTEMPT_HEADER = "x-brink-attempt"
ERROR_HEADER = "x-brink-error"
QUEUE_HEADER = "x-brink-queue"
ROUTING_KEY_HEADER = "x-brink-routing-key"
FAILED_AT_HEADER = "x-brink-failed-at"
DATABASE_OUTAGE_PATIENCE_SECONDS = 60.0
GIVE_BACK_TIMEOUT_SECONDS = 5.0
CANCEL_TIMEOUT_SECONDS = 5.0


T = TypeVar("T")


class Handler(Protocol):
    def __call__(self, payload: Any, *, envelope: Envelope, session: AsyncSession) -> Awaitable[None]: ...


class BatchHandler(Protocol):
    def __call__(self, payloads: list[Any], *, envelopes: list[Envelope], session: AsyncSession) -> Awaitable[None]: ...


@dataclass(frozen=True)
class Batched:
    """A handler that takes the messages of its type that arrive in a row in a batch in one call: one read or one
    insert for them all, where a handler per message pays one each. It must leave the effects of handling them one
    after another, in that order. A failing call fails the batch, whose messages are then handled alone."""

    handler: BatchHandler


@dataclass(frozen=True)
class Arrival:
    """A decoded message waiting for a worker, with the time it arrived."""

    message: AbstractIncomingMessage
    envelope: Envelope
    payload: Payload
    started: float


class PoisonMessage(Exception):
    """A message no retry can fix (unparsable, unknown type): it goes straight to the dead queue."""


class Consumer:
    """Runs handlers on one queue. Effects and the handled rows commit together; acks come after.

    Messages that arrive together are handled in one transaction, up to ``batch_size`` at a time: one commit
    and one handled-rows insert instead of one per message, which is most of a message's cost when handlers
    are small. A batch whose handling fails is rolled back and each message is handled again alone, so one
    bad message is retried or dead-lettered without holding back the others.

    At a steady rate messages rarely arrive together: each one found the worker idle and was a batch of its own
    (a transaction, a commit, an ack and a relay wake-up per message). With ``linger_seconds``, a batch waits
    for company until its first message has waited that long, or until it is full, whichever comes first.
    """

    def __init__(
        self,
        *,
        spec: QueueSpec,
        handlers: dict[str, Handler | Batched],
        broker: Broker,
        sessions: async_sessionmaker[AsyncSession],
        handled: Table,
        prefetch: int = 32,
        batch_size: int = 1,
        linger_seconds: float = 0.0,
    ) -> None:
        self.spec = spec
        self._handlers = handlers
        self._broker = broker
        self._sessions = sessions
        self._handled = handled
        self._prefetch = prefetch
        self._batch_size = max(1, min(batch_size, prefetch))
        self._linger = max(0.0, linger_seconds) if self._batch_size > 1 else 0.0
        self._queue: aio_pika.abc.AbstractQueue | None = None
        self._tag: str | None = None
        self._arrived: asyncio.Queue[Arrival] = asyncio.Queue()
        # One worker gathers a batch at a time: a second one waiting on the queue would take the very arrivals a
        # lingering worker waits for, and both would go with half a batch.
        self._gathering = asyncio.Lock()
        self._acks = Acknowledgements()
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self._broker.declare_queue(self.spec)
        channel = await self._broker.consumer_channel(self._prefetch)
        # Enough workers to keep every prefetched message busy: one when batching, ``prefetch`` when not.
        for number in range(max(1, self._prefetch // self._batch_size)):
            self._workers.append(asyncio.create_task(self._work(), name=f"{self.spec.name}-worker-{number}"))
        # Declared (not fetched with get_queue) so the robust channel knows the queue: after a reconnect it
        # re-declares it and restores this consumer; a fetched queue is silently never consumed again.
        arguments = self._broker.topology.arguments[self.spec.name]
        self._queue = await channel.declare_queue(self.spec.name, durable=True, arguments=arguments)
        self._tag = await self._queue.consume(self.on_message)

    async def stop(self) -> None:
        if self._queue is not None and self._tag is not None:
            # The channel may be gone at shutdown; while the broker is unreachable its robust channel waits for the
            # reconnect, and a service told to stop during an outage did not until the broker came back.
            with suppress(Exception):
                await asyncio.wait_for(self._queue.cancel(self._tag), timeout=CANCEL_TIMEOUT_SECONDS)
        # Messages still waiting here are unacknowledged: the broker delivers them again.
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        started = time.perf_counter()
        if not self._acks.received(message):
            return  # its channel closed before it got here: the broker delivers it again
        if message.redelivered:
            metrics.REDELIVERIES.labels(self.spec.name).inc()
        try:
            envelope, payload = self._decode(message)
        except PoisonMessage as poison:
            await self._dead_letter(message, str(poison))
            return
        self._arrived.put_nowait(Arrival(message, envelope, payload, started))

    async def _work(self) -> None:
        """Handle batches until this worker is stopped: nothing else ends it. A worker that ended on an error
        left the deliveries it would have handled in the consumer's hands for good (its queue looked stuck)."""
        while True:
            batch = await self._next_batch()
            try:
                await self._handle_batch(batch)
            except asyncio.CancelledError:
                if self._being_stopped():
                    raise
                # aiormq cancels what is in flight on a connection that drops (an ack, a publish).
                log.warning("consumer.batch.interrupted", queue=self.spec.name, size=len(batch))
                await self._give_back(batch)
            except Exception:  # an ack on a channel lost meanwhile: the broker redelivers, the handled rows dedupe
                log.warning("consumer.batch.unfinished", queue=self.spec.name, size=len(batch), exc_info=True)
                await self._give_back(batch)

    async def _next_batch(self) -> list[Arrival]:
        """The messages waiting now, at least one; with a linger, also those that arrive before the first message
        has waited ``linger_seconds`` (from its arrival, so a backlog is not held back), until the batch is full.
        Only the gathering waits: a worker being stopped is cancelled here like anywhere else, and the messages
        in its hands, unacknowledged, are delivered again."""
        if not self._linger:
            return self._take_waiting([await self._arrived.get()])
        async with self._gathering:
            batch = self._take_waiting([await self._arrived.get()])
            deadline = batch[0].started + self._linger
            while len(batch) < self._batch_size and (left := deadline - time.perf_counter()) > 0:
                try:
                    async with asyncio.timeout(left):
                        batch.append(await self._arrived.get())
                except TimeoutError:
                    break  # a get cancelled by its timeout leaves any message it was woken for in the queue
                self._take_waiting(batch)
            return batch

    def _take_waiting(self, batch: list[Arrival]) -> list[Arrival]:
        while len(batch) < self._batch_size and not self._arrived.empty():
            batch.append(self._arrived.get_nowait())
        return batch

    @staticmethod
    def _being_stopped() -> bool:
        task = asyncio.current_task()
        return task is None or task.cancelling() > 0

    async def _give_back(self, batch: list[Arrival]) -> None:
        """Release an unfinished batch, within a bound (a nack on a connection that is going away can wait for
        ever), and never fail: deliveries of a lost channel come again from the broker either way."""
        try:
            await asyncio.wait_for(
                self._acks.release(arrival.message for arrival in batch), timeout=GIVE_BACK_TIMEOUT_SECONDS
            )
        except TimeoutError:
            log.warning("consumer.batch.give_back_timed_out", queue=self.spec.name, size=len(batch))
        except asyncio.CancelledError:
            if self._being_stopped():
                raise
            log.warning("consumer.batch.give_back_interrupted", queue=self.spec.name, size=len(batch))
        except Exception:
            log.warning("consumer.batch.give_back_failed", queue=self.spec.name, size=len(batch), exc_info=True)

    async def _handle_batch(self, batch: list[Arrival]) -> None:
        if len(batch) > 1:
            try:
                outcomes = await self._patiently(lambda: self._handle_together(batch))
            except Exception as error:
                log.warning(
                    "consumer.batch.failed", queue=self.spec.name, size=len(batch), error=str(error) or repr(error)
                )
            else:
                await self._acknowledge(batch, outcomes)
                return
        for arrival in batch:
            await self._handle_alone(arrival)

    async def _handle_alone(self, arrival: Arrival) -> None:
        envelope = arrival.envelope
        with bound_contextvars(
            correlation_id=envelope.correlation_id,
            event_id=str(envelope.id),
            event_type=envelope.type,
            queue=self.spec.name,
        ):
            try:
                [outcome] = await self._patiently(lambda: self._handle_together([arrival]))
            except Exception as error:
                log.warning("consumer.handler.failed", error=str(error) or repr(error), exc_info=True)
                await self._retry_or_dead_letter(arrival.message, error)
                return
        await self._acknowledge([arrival], [outcome])

    async def _acknowledge(self, arrivals: list[Arrival], outcomes: list[str]) -> None:
        """Ack what was committed, in one frame where the deliveries before it are settled too."""
        await self._acks.ack(arrival.message for arrival in arrivals)
        done = time.perf_counter()
        for arrival, outcome in zip(arrivals, outcomes, strict=True):
            metrics.MESSAGES_CONSUMED.labels(self.spec.name, outcome).inc()
            metrics.HANDLER_SECONDS.labels(self.spec.name).observe(done - arrival.started)

    def _decode(self, message: AbstractIncomingMessage) -> tuple[Envelope, Payload]:
        try:
            envelope = Envelope.from_bytes(message.body)
            payload = envelope.payload()
        except (ValidationError, UnknownEventType, ValueError) as error:
            raise PoisonMessage(f"undecodable message: {str(error).splitlines()[0]}") from None
        if envelope.type not in self._handlers:
            raise PoisonMessage(f"no handler for {envelope.type} on {self.spec.name}")
        return envelope, payload

    async def _patiently(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()``, tried again while the database is away (for up to a minute) rather than failed."""
        deadline = time.monotonic() + DATABASE_OUTAGE_PATIENCE_SECONDS
        delay = 0.5
        while True:
            try:
                return await attempt()
            except Exception as error:
                if not is_database_outage(error) or time.monotonic() > deadline:
                    raise
                log.warning("consumer.database.unavailable", error=str(error).splitlines()[0], retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _handle_together(self, batch: list[Arrival]) -> list[str]:
        """Every message of the batch in one transaction, in arrival order; each one's outcome, ``handled`` or
        ``duplicate`` (its envelope id was handled before)."""
        outcomes = []
        async with transaction(self._sessions) as session:
            now = utcnow()
            first_time = await insert_many_if_new(
                session,
                self._handled,
                [{"consumer": self.spec.name, "event_id": str(a.envelope.id), "handled_at": now} for a in batch],
                returning=self._handled.c.event_id,
            )
            run: list[Arrival] = []  # messages in a row for one batched handler, handled when the row ends
            for arrival in batch:
                envelope = arrival.envelope
                if str(envelope.id) not in first_time:
                    with self._message_context(envelope):
                        log.info("consumer.message.duplicate")
                    outcomes.append("duplicate")
                    continue
                first_time.discard(str(envelope.id))  # the same message twice in one batch: once only
                outcomes.append("handled")
                if run and run[0].envelope.type != envelope.type:
                    await self._handle_run(run, session)
                    run = []
                handler = self._handlers[envelope.type]
                if isinstance(handler, Batched):
                    run.append(arrival)
                    continue
                with self._message_context(envelope):
                    await handler(arrival.payload, envelope=envelope, session=session)
            if run:
                await self._handle_run(run, session)
        metrics.MESSAGES_PER_COMMIT.labels(self.spec.name).observe(len(batch))
        return outcomes

    async def _handle_run(self, run: list[Arrival], session: AsyncSession) -> None:
        """Messages of one type in a row, to their batched handler in one call."""
        handler = self._handlers[run[0].envelope.type]
        assert isinstance(handler, Batched)
        with bound_contextvars(event_type=run[0].envelope.type, queue=self.spec.name):
            await handler.handler(
                [arrival.payload for arrival in run], envelopes=[arrival.envelope for arrival in run], session=session
            )

    def _message_context(self, envelope: Envelope) -> Any:
        """What every log line written while handling one message says about it."""
        return bound_contextvars(
            correlation_id=envelope.correlation_id,
            event_id=str(envelope.id),
            event_type=envelope.type,
            queue=self.spec.name,
        )

    async def _retry_or_dead_letter(self, message: AbstractIncomingMessage, error: Exception) -> None:
        counted = (message.headers or {}).get(ATTEMPT_HEADER)
        attempt = counted if isinstance(counted, int) else 0
        reason = error_text(error)[:1000]  # travels in the message's headers: no personal data, no secrets
        if attempt >= len(self.spec.retry_delays):
            await self._dead_letter(message, reason)
            return
        headers = {**(message.headers or {}), ATTEMPT_HEADER: attempt + 1, ERROR_HEADER: reason}
        try:
            await self._broker.publish_raw(RETRY_EXCHANGE, self.spec.retry_queue(attempt), self._copy(message, headers))
        except Exception:
            # Could not park it for later: let the broker redeliver (bounded by x-delivery-limit).
            await self._acks.nack(message)
            return
        await self._acks.ack([message])
        metrics.MESSAGES_CONSUMED.labels(self.spec.name, "retried").inc()

    async def _dead_letter(self, message: AbstractIncomingMessage, reason: str) -> None:
        log.error("consumer.message.dead_lettered", queue=self.spec.name, reason=reason)
        headers = {
            **(message.headers or {}),
            ERROR_HEADER: reason,
            QUEUE_HEADER: self.spec.name,
            ROUTING_KEY_HEADER: (message.headers or {}).get(ROUTING_KEY_HEADER) or message.routing_key or "",
            FAILED_AT_HEADER: utcnow().isoformat(),
        }
        try:
            await self._broker.publish_raw(DEAD_EXCHANGE, self.spec.name, self._copy(message, headers))
        except Exception:
            await self._acks.nack(message)
            return
        await self._acks.ack([message])
        metrics.DEAD_LETTERED.labels(self.spec.name).inc()
        metrics.MESSAGES_CONSUMED.labels(self.spec.name, "dead_lettered").inc()

    @staticmethod
    def _copy(message: AbstractIncomingMessage, headers: dict[str, Any]) -> OutgoingMessage:
        if ROUTING_KEY_HEADER not in headers and message.routing_key:
            headers[ROUTING_KEY_HEADER] = message.routing_key
        return build_message(
            message.body,
            message_id=message.message_id or "",
            event_type=message.type or "",
            correlation_id=message.correlation_id or "",
            headers=headers,
        )
