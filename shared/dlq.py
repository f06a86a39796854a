"""Dead letters an operator can read, replay to their original queue, or drop — over plain AMQP.

Reading without losing: messages are taken with ``basic.get`` and manual acknowledgement, all held unacked on
one channel until the operation ends; each one not selected is then put back as a copy, published to the back of
its queue with a confirm, and only then is the message read acknowledged, in the order they were read. A quorum
queue's back is where a returned message would go, so when every message was held the order is unchanged; with
``--limit`` below the queue's length the ones read move behind the rest. Put back this way rather than returned
(``nack(requeue=True)``), a message starts again at delivery count 0: RabbitMQ counts returns as deliveries
(4.0 to 4.2 every return) and drops a message past the queue's delivery limit, so reading never uses any up.
The dead queues have an explicit delivery limit no reading reaches (``HOLDING_DELIVERY_LIMIT``), which counts
only a reader that dies while holding messages. If the connection is lost between a copy's confirm and the
acknowledgement, the message is there twice (replaying both is harmless: consumers de-duplicate by envelope id).
Messages that arrive while an operation runs are not touched by it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from shared.amqp_cluster import connect_any, describe_broker
from shared.consumer import ATTEMPT_HEADER, ERROR_HEADER, FAILED_AT_HEADER, QUEUE_HEADER

DEAD_SUFFIX = ".dead"
REPLAYED_HEADER = "x-brink-replayed"
# The consumer queues Brink declares today; ``BRINK_DLQ_QUEUES`` or the command line can name others.
# Kept equal to the queues the services declare by tests/unit/test_ops_dlq_queues.py.
DEFAULT_CONSUMER_QUEUES = (
    "diagnosis.cancellations",
    "diagnosis.signals",
    "diagnosis.history",
    "outreach.diagnoses",
    "outreach.withdrawals",
)
DEFAULT_LIMIT = 1000
# Headers that describe one failure; a replayed message starts its retries afresh without them.
FAILURE_HEADERS = (
    ATTEMPT_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    QUEUE_HEADER,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)


class DeadLetterError(RuntimeError):
    """Something an operator asked for cannot be done; the message says what."""


def dead_queue_name(queue: str) -> str:
    """``diagnosis.cancellations`` and ``diagnosis.cancellations.dead`` both name the same dead queue."""
    return queue if queue.endswith(DEAD_SUFFIX) else queue + DEAD_SUFFIX


@dataclass
class DeadLetter:
    """One dead message as an operator sees it."""

    dead_queue: str
    message_id: str
    event_type: str
    original_queue: str
    reason: str
    failed_at: str
    headers: dict[str, Any] = field(repr=False)
    body: bytes = field(repr=False)

    def pretty_body(self) -> str:
        """The body as indented JSON, or as text when it is not JSON."""
        try:
            return json.dumps(json.loads(self.body), indent=2, sort_keys=True)
        except ValueError:
            return self.body.decode("utf-8", errors="replace")


def _first_death(headers: dict[str, Any]) -> dict[str, Any]:
    deaths = headers.get("x-death") or []
    return dict(deaths[0]) if deaths and isinstance(deaths[0], dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


def describe(message: AbstractIncomingMessage, dead_queue: str) -> DeadLetter:
    """Why and where a message died, from Brink's own headers or else the broker's ``x-death``."""
    headers = dict(message.headers or {})
    death = _first_death(headers)
    reason = _text(headers.get(ERROR_HEADER))
    if not reason and death:
        reason = f"broker dead-lettered it: {_text(death.get('reason'))} (x-death count {_text(death.get('count'))})"
    return DeadLetter(
        dead_queue=dead_queue,
        message_id=message.message_id or "",
        event_type=message.type or "",
        original_queue=_text(headers.get(QUEUE_HEADER))
        or _text(death.get("queue"))
        or dead_queue.removesuffix(DEAD_SUFFIX),
        reason=reason or "unknown",
        failed_at=_text(headers.get(FAILED_AT_HEADER)) or _text(death.get("time")),
        headers=headers,
        body=message.body,
    )


@asynccontextmanager
async def _connected(amqp_url: str) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
    try:
        connection = await connect_any(amqp_url, timeout=10)
    except Exception as error:  # any failure to connect reads the same to an operator
        raise DeadLetterError(
            f"RabbitMQ is not reachable at {describe_broker(amqp_url)} ({error.__class__.__name__})"
        ) from None
    try:
        yield connection
    finally:
        await connection.close()


async def _message_count(connection: aio_pika.abc.AbstractConnection, queue: str) -> int | None:
    """Messages ready in ``queue``, or None when it does not exist (a failed passive declare closes its channel)."""
    channel = await connection.channel()
    try:
        declared = await channel.declare_queue(queue, passive=True)
    except aio_pika.exceptions.ChannelClosed:
        return None
    count = declared.declaration_result.message_count or 0
    await channel.close()
    return count


@dataclass
class _Held:
    channel: AbstractChannel
    messages: list[tuple[AbstractIncomingMessage, DeadLetter]]
    settled: set[int] = field(default_factory=set)

    async def settle(self, index: int) -> None:
        await self.messages[index][0].ack()
        self.settled.add(index)


@asynccontextmanager
async def _hold(amqp_url: str, dead_queue: str, *, limit: int) -> AsyncIterator[_Held]:
    """Take up to ``limit`` messages unacked; whatever is not settled is put back, in order, on the way out."""
    async with _connected(amqp_url) as connection:
        count = await _message_count(connection, dead_queue)
        if count is None:
            raise DeadLetterError(f"queue {dead_queue} does not exist on {describe_broker(amqp_url)}")
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await channel.get_queue(dead_queue, ensure=False)
        held = _Held(channel=channel, messages=[])
        # Never more than were there at the start: messages put back must not be read twice.
        for _ in range(min(count, limit)):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            held.messages.append((message, describe(message, dead_queue)))
        try:
            yield held
        finally:
            for index in range(len(held.messages)):
                if index not in held.settled and not channel.is_closed:
                    message, letter = held.messages[index]
                    await channel.default_exchange.publish(
                        put_back_message(message, letter), routing_key=dead_queue, mandatory=True, timeout=10
                    )
                    await held.settle(index)
            # Anything not put back (the channel was lost) returns to the queue with the channel.
            if not channel.is_closed:
                await channel.close()


def put_back_message(message: AbstractIncomingMessage, letter: DeadLetter) -> aio_pika.Message:
    """A copy of a dead message to put back in its queue: the same body and properties, at delivery count 0,
    with why it died in Brink's own headers (a broker's ``x-death`` is its to set, not a publisher's)."""
    headers = {key: value for key, value in letter.headers.items() if key != "x-delivery-count"}
    if ERROR_HEADER not in headers and "x-death" in headers:
        headers |= {
            ERROR_HEADER: letter.reason,
            QUEUE_HEADER: letter.original_queue,
            FAILED_AT_HEADER: letter.failed_at,
        }
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        priority=message.priority,
        correlation_id=message.correlation_id,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


async def count_dead_letters(amqp_url: str, queues: Iterable[str]) -> dict[str, int | None]:
    """Messages in each dead queue (None where the queue does not exist)."""
    async with _connected(amqp_url) as connection:
        return {dead_queue_name(q): await _message_count(connection, dead_queue_name(q)) for q in queues}


async def list_dead_letters(amqp_url: str, queue: str, *, limit: int = DEFAULT_LIMIT) -> list[DeadLetter]:
    """Read the dead messages of one queue without removing them."""
    async with _hold(amqp_url, dead_queue_name(queue), limit=limit) as held:
        return [letter for _message, letter in held.messages]


async def show_dead_letter(amqp_url: str, queue: str, message_id: str, *, limit: int = DEFAULT_LIMIT) -> DeadLetter:
    """One dead message by its id (the envelope id)."""
    for letter in await list_dead_letters(amqp_url, queue, limit=limit):
        if letter.message_id == message_id:
            return letter
    raise DeadLetterError(f"no message {message_id} in {dead_queue_name(queue)}")


def _selected(held: _Held, ids: set[str] | None) -> list[int]:
    chosen = [i for i, (_m, letter) in enumerate(held.messages) if ids is None or letter.message_id in ids]
    missing = (ids or set()) - {held.messages[i][1].message_id for i in chosen}
    if missing:
        raise DeadLetterError(
            f"not in {held.messages[0][1].dead_queue if held.messages else 'the queue'}: {', '.join(sorted(missing))}"
        )
    return chosen


def replay_message(letter: DeadLetter) -> aio_pika.Message:
    """The message as first published, its retry count reset, marked with how often it was replayed."""
    headers = {k: v for k, v in letter.headers.items() if k not in FAILURE_HEADERS}
    headers[REPLAYED_HEADER] = int(letter.headers.get(REPLAYED_HEADER, 0) or 0) + 1
    return aio_pika.Message(
        letter.body,
        headers=headers,
        message_id=letter.message_id or None,
        type=letter.event_type or None,
        correlation_id=None,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def replay_dead_letters(
    amqp_url: str, queue: str, *, ids: set[str] | None = None, limit: int = DEFAULT_LIMIT
) -> list[DeadLetter]:
    """Republish to the original queue with confirms, then ack the dead copy; ``ids=None`` replays all."""
    replayed: list[DeadLetter] = []
    async with _hold(amqp_url, dead_queue_name(queue), limit=limit) as held:
        for index in _selected(held, ids):
            message, letter = held.messages[index]
            outgoing = replay_message(letter)
            outgoing.correlation_id = message.correlation_id
            # The default exchange routes by queue name; mandatory makes a missing queue an error, not a loss.
            await held.channel.default_exchange.publish(
                outgoing, routing_key=letter.original_queue, mandatory=True, timeout=10
            )
            await held.settle(index)
            replayed.append(letter)
    return replayed


async def purge_dead_letters(
    amqp_url: str, queue: str, *, ids: set[str] | None = None, limit: int = DEFAULT_LIMIT
) -> list[DeadLetter]:
    """Drop dead messages for good; ``ids=None`` drops every one there was when it started."""
    dropped: list[DeadLetter] = []
    async with _hold(amqp_url, dead_queue_name(queue), limit=limit) as held:
        for index in _selected(held, ids):
            await held.settle(index)
            dropped.append(held.messages[index][1])
    return dropped
