"""RabbitMQ on aio-pika: topology, confirmed persistent publishing, and a connection that fails over between nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue
from aiormq.abc import ChannelFrame
from pamqp.body import ContentBody
from pamqp.header import ContentHeader

from shared.amqp_cluster import ClusterConnection, any_node_answers, connect_cluster, describe_broker
from shared.events import Envelope
from shared.logs import get_logger

__all__ = ["Broker", "BrokerUnavailable", "QueueSpec", "describe_broker"]

EVENTS_EXCHANGE = "brink.events"
DEAD_EXCHANGE = "brink.dead"
RETRY_EXCHANGE = "brink.retry"
UNROUTED_EXCHANGE = "brink.unrouted"
UNROUTED_QUEUE = "brink.unrouted"
PUBLISH_TIMEOUT_SECONDS = 10.0
# Three replicas of every quorum queue (all the nodes of a three-node cluster; fewer nodes, fewer replicas), each
# queue's leader on the node with the fewest leaders when it is declared.
REPLICAS = 3
CLUSTER_ARGUMENTS: dict[str, Any] = {"x-quorum-initial-group-size": REPLICAS, "x-queue-leader-locator": "balanced"}
# Queues that hold messages for people (dead letters, unrouted events) are read and returned, and a reader may
# die holding them: each return counts as a delivery. Without a limit RabbitMQ 4 applies 20 and then drops the
# message (these queues have no dead-letter exchange), and -1, "unlimited" on 4.x, drops on the first return on
# 3.x. A limit no reading will reach, the same on every version.
HOLDING_DELIVERY_LIMIT = 1_000_000

log = get_logger("shared.messaging")


class BrokerUnavailable(RuntimeError):
    pass


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
            **CLUSTER_ARGUMENTS,
            # RabbitMQ 3.x has no default limit, 4.x one of 20 counting every return; a crash loop ends in the dead queue.
            "x-delivery-limit": self.delivery_limit,
            "x-dead-letter-exchange": DEAD_EXCHANGE,
            "x-dead-letter-routing-key": self.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }

    def retry_arguments(self, delay: float) -> dict[str, Any]:
        return {
            "x-queue-type": "quorum",
            **CLUSTER_ARGUMENTS,
            # Nobody consumes a retry queue: its messages expire back to the main queue, never delivered here.
            "x-delivery-limit": self.delivery_limit,
            "x-message-ttl": int(delay * 1000),
            # Expired messages go back to the main queue through the default exchange.
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": self.name,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }


def holding_arguments(**extra: Any) -> dict[str, Any]:
    """A quorum queue whose messages wait for an operator: replicated, and never dropped for being read."""
    return {"x-queue-type": "quorum", **CLUSTER_ARGUMENTS, "x-delivery-limit": HOLDING_DELIVERY_LIMIT, **extra}


def as_declared_before(arguments: dict[str, Any], *added: str) -> dict[str, Any]:
    """A queue's arguments as an earlier release declared it: without the cluster arguments and ``added``."""
    return {key: value for key, value in arguments.items() if key not in CLUSTER_ARGUMENTS and key not in added}


async def declare_compatibly(
    connection: aio_pika.abc.AbstractConnection, name: str, arguments: dict[str, Any], before: dict[str, Any]
) -> dict[str, Any]:
    """The arguments ``name`` is declared with: ``arguments``, or ``before`` for a queue an earlier release declared.

    RabbitMQ refuses (406) to redeclare a queue with other arguments and cannot change them; such a queue keeps its
    own, with a warning naming what it lacks (a policy can add it: README, Operating a cluster). ``connection`` is a
    plain one: a refused declaration closes its channel, which a robust connection would reopen.
    """
    refused: aio_pika.exceptions.ChannelPreconditionFailed | None = None
    for candidate in (arguments, before):
        channel = await connection.channel(publisher_confirms=False)
        try:
            await channel.declare_queue(name, durable=True, arguments=candidate)
        except aio_pika.exceptions.ChannelPreconditionFailed as error:
            refused = error
            continue
        finally:
            if not channel.is_closed:
                await channel.close()
        if candidate is before:
            log.warning("messaging.queue.declared_before", queue=name, lacks=sorted(set(arguments) - set(before)))
        return candidate
    assert refused is not None
    raise refused


@dataclass
class Topology:
    """Declared objects, kept referenced: robust connections restore them through weak references."""

    events: AbstractExchange | None = None
    dead: AbstractExchange | None = None
    retry: AbstractExchange | None = None
    queues: dict[str, AbstractQueue] = field(default_factory=dict)
    # The arguments each consumer queue was declared with, which a consumer's own declaration must repeat.
    arguments: dict[str, dict[str, Any]] = field(default_factory=dict)


async def declare_exchanges(
    channel: AbstractChannel, topology: Topology, *, probe: aio_pika.abc.AbstractConnection
) -> None:
    """Declare the exchanges idempotently; unroutable events land in ``brink.unrouted`` to be seen."""
    unrouted = await channel.declare_exchange(UNROUTED_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True)
    wanted = holding_arguments(**{"x-max-length": 100_000})
    arguments = await declare_compatibly(probe, UNROUTED_QUEUE, wanted, as_declared_before(wanted, "x-delivery-limit"))
    unrouted_queue = await channel.declare_queue(UNROUTED_QUEUE, durable=True, arguments=arguments)
    await unrouted_queue.bind(unrouted)
    topology.queues[UNROUTED_QUEUE] = unrouted_queue
    topology.events = await channel.declare_exchange(
        EVENTS_EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True, arguments={"alternate-exchange": UNROUTED_EXCHANGE}
    )
    topology.dead = await channel.declare_exchange(DEAD_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)
    topology.retry = await channel.declare_exchange(RETRY_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)


async def declare_consumer_queue(
    channel: AbstractChannel, topology: Topology, spec: QueueSpec, *, probe: aio_pika.abc.AbstractConnection
) -> AbstractQueue:
    """The main quorum queue, its delayed-retry queues and its dead-letter queue (``probe``: see declare_compatibly)."""
    assert topology.events and topology.dead and topology.retry, "declare_exchanges first"
    wanted = spec.main_arguments()
    main_arguments = await declare_compatibly(probe, spec.name, wanted, as_declared_before(wanted))
    topology.arguments[spec.name] = main_arguments
    queue = await channel.declare_queue(spec.name, durable=True, arguments=main_arguments)
    for key in spec.routing_keys:
        await queue.bind(topology.events, routing_key=key)
    for attempt, delay in enumerate(spec.retry_delays):
        name = spec.retry_queue(attempt)
        wanted = spec.retry_arguments(delay)
        arguments = await declare_compatibly(probe, name, wanted, as_declared_before(wanted, "x-delivery-limit"))
        retry_queue = await channel.declare_queue(name, durable=True, arguments=arguments)
        await retry_queue.bind(topology.retry, routing_key=name)
        topology.queues[name] = retry_queue
    wanted = holding_arguments()
    dead_arguments = await declare_compatibly(
        probe, spec.dead_queue, wanted, as_declared_before(wanted, "x-delivery-limit")
    )
    dead_queue = await channel.declare_queue(spec.dead_queue, durable=True, arguments=dead_arguments)
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


def publish_frames(exchange: str, routing_key: str, message: OutgoingMessage, max_content_size: int) -> list[Any]:
    """The frames of a persistent, mandatory publish: method, content header and the body in frames that fit
    (``max_content_size`` below 1: a broker that set no frame size limit, so the body goes in one frame)."""
    body = message.body
    step = max_content_size if max_content_size > 0 else max(len(body), 1)
    return [
        aiormq.spec.Basic.Publish(exchange=exchange, routing_key=routing_key, mandatory=True),
        ContentHeader(properties=message.properties, body_size=len(body)),
        *(ContentBody(body[start : start + step]) for start in range(0, len(body), step)),
    ]


def marshal_each(
    channel: aiormq.Channel, exchange: str, messages: list[tuple[str, OutgoingMessage]]
) -> tuple[ChannelFrame, list[int], list[BaseException | None]]:
    """The publishes of ``messages`` as one write; the positions of those in it; each one's error, if it could not be
    written (a property AMQP cannot hold, such as a correlation id over 255 bytes of UTF-8). Such a message fails
    alone: failing the batch for it failed every later batch too, as it stays the oldest pending row."""
    number, size = channel.number, channel.max_content_size
    errors: list[BaseException | None] = [None] * len(messages)
    try:  # the usual case, in one buffer
        frames = [frame for key, message in messages for frame in publish_frames(exchange, key, message, size)]
        return ChannelFrame.marshall(channel_number=number, frames=frames), list(range(len(messages))), errors
    except Exception:
        written: list[bytes] = []
        positions: list[int] = []
        for position, (key, message) in enumerate(messages):
            try:
                frames = publish_frames(exchange, key, message, size)
                written.append(ChannelFrame.marshall(channel_number=number, frames=frames).payload)
            except Exception as error:
                errors[position] = error
            else:
                positions.append(position)
        return ChannelFrame(payload=b"".join(written), should_close=False), positions, errors


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
        self.connection: ClusterConnection | None = None
        self._publish_channel: AbstractChannel | None = None
        self.topology = Topology()
        self._consumer_channels: list[AbstractChannel] = []

    @property
    def where(self) -> str:
        return describe_broker(self._url)

    async def connect(self) -> None:
        """Connect and declare the exchanges; BrokerUnavailable names where it looked."""
        try:
            self.connection = await connect_cluster(self._url, timeout=self._connect_timeout)
        except (TimeoutError, OSError, aio_pika.exceptions.AMQPError) as error:
            raise BrokerUnavailable(f"RabbitMQ is not reachable at {self.where} ({error.__class__.__name__})") from None
        self._publish_channel = await self.connection.channel(publisher_confirms=True, on_return_raises=True)
        async with self._probe() as probe:
            await declare_exchanges(self._publish_channel, self.topology, probe=probe)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None

    @property
    def is_connected(self) -> bool:
        return self.connection is not None and not self.connection.is_closed and self.connection.connected.is_set()

    async def check(self) -> None:
        """Raise BrokerUnavailable only while no node answers: a connection moving to another node is not an outage."""
        # Within a readiness probe's time (Kubernetes waits 5 s): every node is tried at once, for 2 s at most.
        if self.is_connected or await any_node_answers(self._url, timeout=min(2.0, self._connect_timeout)):
            return
        raise BrokerUnavailable(f"no RabbitMQ node answers at {self.where}")

    @asynccontextmanager
    async def _probe(self) -> AsyncIterator[aio_pika.abc.AbstractConnection]:
        """A plain connection to this connection's node, to try declarations that may be refused."""
        assert self.connection is not None
        probe = await aio_pika.connect(self.connection.url, timeout=self._connect_timeout)
        try:
            yield probe
        finally:
            await probe.close()

    async def declare_queue(self, spec: QueueSpec) -> AbstractQueue:
        assert self._publish_channel is not None
        async with self._probe() as probe:
            return await declare_consumer_queue(self._publish_channel, self.topology, spec, probe=probe)

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
        """Publish (routing key, message) pairs and await every confirm; each outcome is None or the error.

        The batch goes to the connection's writer as one write, and its confirms are awaited together. Sent one
        by one through aiormq's ``basic_publish`` (a task, the channel lock, a timeout and a socket write per
        message) a batch of 20 cost the relay twice the CPU. Delivery tags, confirms, nacks and returns are
        aiormq's own bookkeeping, filled in as ``basic_publish`` fills it: a nack or a return fails that message.
        """
        if not messages:
            return []
        try:
            channel, exchange = await self._publish_channel_for(exchange_name)
        except Exception as error:
            return [error] * len(messages)
        # Built before any delivery tag is taken: a message the broker would refuse fails here, with nothing sent.
        payload, positions, outcomes = marshal_each(channel, exchange, messages)
        if not positions:
            return outcomes
        sent = [messages[position][1] for position in positions]
        confirmations: list[asyncio.Future[Any]] = []
        tags: list[tuple[str, int]] = []
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                async with channel.lock:
                    first = channel.delivery_tag + 1
                    for tag, message in enumerate(sent, start=first):
                        confirmation = channel.create_future()
                        channel.confirmations[tag] = confirmation
                        message_id = str(message.properties.message_id)
                        channel.message_id_delivery_tag[message_id] = tag
                        confirmations.append(confirmation)
                        tags.append((message_id, tag))
                    channel.delivery_tag = first + len(sent) - 1
                    try:
                        await channel.write_queue.put(payload)
                    except BaseException:
                        # Never sent, so never numbered by the broker: the tags are taken back for the next publish.
                        channel.delivery_tag = first - 1
                        for _, tag in tags:
                            channel.confirmations.pop(tag, None)
                        raise
                await asyncio.wait(confirmations)
        except Exception as error:  # a timeout, or the channel closed before the batch was written
            failure: BaseException = error
        else:
            failure = TimeoutError("no confirm")
        finally:
            for message_id, tag in tags:
                if channel.message_id_delivery_tag.get(message_id) == tag:
                    del channel.message_id_delivery_tag[message_id]
            for confirmation in confirmations:
                confirmation.cancel()  # one still waiting when time ran out: a late confirm is ignored
        # None: time ran out waiting for the channel, before the batch was numbered or sent.
        waited: list[asyncio.Future[Any] | None] = [*confirmations] or [None] * len(positions)
        for position, confirmed in zip(positions, waited, strict=True):
            outcomes[position] = failure if confirmed is None or confirmed.cancelled() else confirmed.exception()
        return outcomes

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
