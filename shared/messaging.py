"""RabbitMQ on aio-pika: topology, confirmed persistent publishing, and a connection that reconnects."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection

from shared.events import Envelope
from shared.logs import get_logger

EVENTS_EXCHANGE = "brink.events"
DEAD_EXCHANGE = "brink.dead"
RETRY_EXCHANGE = "brink.retry"
UNROUTED_EXCHANGE = "brink.unrouted"
UNROUTED_QUEUE = "brink.unrouted"
PUBLISH_TIMEOUT_SECONDS = 10.0
# Publishes that fit aiormq's connection write buffer: more in one event-loop turn wait on the channel in turn.
PUBLISHES_PER_TURN = aiormq.Connection.FRAME_BUFFER_SIZE

log = get_logger("shared.messaging")


class BrokerUnavailable(RuntimeError):
    pass


def describe_broker(url: str) -> str:
    """Host and port of an AMQP URL, without the credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5672}{parts.path or '/'}"


@dataclass(frozen=True)
class QueueSpec:
    """One consumer's queue: what it listens to, and how hard it retries before dead-lettering."""

    name: str
    routing_keys: tuple[str, ...]
    retry_delays: tuple[float, ...] = (1.0, 5.0, 30.0)
    delivery_limit: int = 10

    @property
    def dead_queue(self) -> str:
        return f"{self.name}.dead"

    def retry_queue(self, attempt: int) -> str:
        """``<queue>.retry.<delay>s``: named by its delay, so changing the delays never meets a queue
        declared with another TTL (which RabbitMQ refuses)."""
        return f"{self.name}.retry.{self.retry_delays[attempt]:g}s"

    def main_arguments(self) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            # RabbitMQ 3.10 quorum queues have no default limit; a crash loop must end in the dead queue.
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": DEAD_EXCHANGE,
            "x-dead-letter-routing-key": self.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def retry_arguments(self, delay: float) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            "x-message-ttl": int(delay * 1000),
            # Expired messages go back to the main queue through the default exchange.
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


@dataclass
class Topology:
    """Declared objects, kept referenced: robust connections restore them through weak references."""

    events: AbstractExchange | None = None
    dead: AbstractExchange | None = None
    retry: AbstractExchange | None = None
    queues: dict[str, AbstractQueue] = field(default_factory=dict)


async def declare_exchanges(channel: AbstractChannel, topology: Topology) -> None:
    """Declare the exchanges idempotently; unroutable events land in ``brink.unrouted`` to be seen."""
    unrouted = await channel.declare_exchange(UNROUTED_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
    unrouted_queue = await channel.declare_queue(
        UNROUTED_QUEUE, durable=True, arguments={"x-queue-type": "quorum", "x-max-length": 100_000}
    )
    await unrouted_queue.bind(unrouted)
    topology.queues[UNROUTED_QUEUE] = unrouted_queue
    topology.events = await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": UNROUTED_EXCHANGE}
    )
    topology.dead = await channel.declare_exchange(DEAD_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    topology.retry = await channel.declare_exchange(RETRY_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)


async def declare_consumer_queue(channel: AbstractChannel, topology: Topology, spec: QueueSpec) -> AbstractQueue:
    """The main quorum queue, its delayed-retry queues and its dead-letter queue."""
    assert topology.events and topology.dead and topology.retry, "declare_exchanges first"
    queue = await channel.declare_queue(spec.name, durable=True, arguments=spec.main_arguments())
    for key in spec.routing_keys:
        await queue.bind(topology.events, routing_key=key)
    for attempt, delay in enumerate(spec.retry_delays):
        retry_queue = await channel.declare_queue(
            spec.retry_queue(attempt), durable=True, arguments=spec.retry_arguments(delay)
        )
        await retry_queue.bind(topology.retry, routing_key=spec.retry_queue(attempt))
        topology.queues[spec.retry_queue(attempt)] = retry_queue
    dead_queue = await channel.declare_queue(spec.dead_queue, durable=True, arguments={"x-queue-type": "quorum"})
    await dead_queue.bind(topology.dead, routing_key=spec.name)
    topology.queues[spec.dead_queue] = dead_queue
    topology.queues[spec.name] = queue
    return queue


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """A body and its AMQP properties, as the broker gets them.

    Built straight from the properties rather than as an ``aio_pika.Message``, whose attribute checks cost
    a relay more than the publish frames themselves.
    """

    body: bytes
    properties: aiormq.spec.Basic.Properties


def build_message(
    envelope_body: bytes,
    *,
    message_id: str,
    event_type: str,
    correlation_id: str,
    headers: dict[str, Any] | None = None,
) -> OutgoingMessage:
    """A persistent JSON message; ``headers`` only when there are some (an empty table still costs bytes)."""
    return OutgoingMessage(
        envelope_body,
        aiormq.spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=int(aio_pika.DeliveryMode.PERSISTENT),
            message_id=message_id,
            correlation_id=correlation_id,
            message_type=event_type,
            headers=headers or None,
        ),
    )


class Broker:
    """One robust connection, a confirming publisher channel, and a channel per consumer."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self._url = url
        self._connect_timeout = connect_timeout
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self.topology = Topology()
        self._consumer_channels: list[AbstractChannel] = []

    @property
    def where(self) -> str:
        return describe_broker(self._url)

    async def connect(self) -> None:
        """Connect and declare the exchanges; BrokerUnavailable names where it looked."""
        try:
            self.connection = await aio_pika.connect_robust(self._url, timeout=self._connect_timeout)
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as error:
            raise BrokerUnavailable(f"RabbitMQ is not reachable at {self.where} ({error.__class__.__name__})") from None
        self._publish_channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        await declare_exchanges(self._publish_channel, self.topology)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None

    @property
    def is_connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed and self.connection.connected.is_set()

    async def declare_queue(self, spec: QueueSpec) -> AbstractQueue:
        assert self._publish_channel is not None
        return await declare_consumer_queue(self._publish_channel, self.topology, spec)

    async def consumer_channel(self, prefetch: int) -> AbstractChannel:
        assert self.connection is not None
        channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=prefetch)
        self._consumer_channels.append(channel)
        return channel

    async def publish(self, envelope: Envelope) -> None:
        """Publish an event persistently and wait for the broker's confirm."""
        await self.publish_raw(
            EVENTS_EXCHANGE,
            envelope.type,
            build_message(
                envelope.to_bytes(),
                message_id=str(envelope.id),
                event_type=envelope.type,
                correlation_id=envelope.correlation_id,
            ),
        )

    async def _publish_channel_for(self, exchange_name: str) -> tuple[aiormq.Channel, str]:
        if not self.is_connected or self._publish_channel is None:
            raise BrokerUnavailable(f"not connected to RabbitMQ at {self.where}")
        # Every exchange is declared on the publishing channel, so its frames go out on that channel's underlay.
        channel = await self._publish_channel.get_underlay_channel()
        if not isinstance(channel, aiormq.Channel):
            raise BrokerUnavailable(f"RabbitMQ at {self.where} handed out a {type(channel).__name__}, not a channel")
        return channel, exchange_name

    @staticmethod
    async def _publish_on(channel: aiormq.Channel, exchange: str, routing_key: str, message: OutgoingMessage) -> None:
        # What Exchange.publish does, but without waiting for each frame to reach the socket: aiormq holds
        # the channel lock until that drain, so a batch of concurrent publishes went out one event-loop
        # turn at a time (seconds per relay batch while the process served HTTP). The broker's confirm is
        # still awaited before this returns, and a nack or a return still raises.
        await channel.basic_publish(
            message.body,
            exchange=exchange,
            routing_key=routing_key,
            properties=message.properties,
            mandatory=True,
            timeout=PUBLISH_TIMEOUT_SECONDS,
            wait=False,
        )

    async def publish_raw(self, exchange_name: str, routing_key: str, message: OutgoingMessage) -> None:
        """Publish one message and wait for the broker's confirm."""
        channel, exchange = await self._publish_channel_for(exchange_name)
        await self._publish_on(channel, exchange, routing_key, message)

    async def publish_many(
        self, exchange_name: str, messages: list[tuple[str, OutgoingMessage]]
    ) -> list[BaseException | None]:
        """Publish (routing key, message) pairs at once and await every confirm; each outcome is None or the error.

        The publishes start a connection write buffer's worth per event-loop turn: started all together,
        all but the first few wait on the channel in turn, one loop turn each, and a turn is long while
        the process also serves HTTP (a batch of 200 took seconds under load).
        """
        channel, exchange = await self._publish_channel_for(exchange_name)
        tasks: list[asyncio.Future[None]] = []
        try:
            for start in range(0, len(messages), PUBLISHES_PER_TURN):
                tasks += [
                    asyncio.ensure_future(self._publish_on(channel, exchange, routing_key, message))
                    for routing_key, message in messages[start : start + PUBLISHES_PER_TURN]
                ]
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            raise
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return [result if isinstance(result, BaseException) else None for result in results]

    async def queue_depths(self, names: list[str]) -> dict[str, tuple[int, int]]:
        """Messages ready and consumers for each queue, read by passive declaration."""
        assert self.connection is not None
        depths: dict[str, tuple[int, int]] = {}
        async with self.connection.channel() as channel:
            for name in names:
                declared = await channel.declare_queue(name, passive=True)
                result = declared.declaration_result
                depths[name] = (result.message_count or 0, result.consumer_count or 0)
        return depths
