"""Failover on a real three-node RabbitMQ cluster: a node stops under a running consumer, and under the outbox
relay; both carry on through another node of ``BRINK_AMQP_URL`` without a restart, and nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import func, select

from shared.consumer import Consumer
from shared.db import make_engine, make_sessionmaker, transaction
from shared.events import DiagnosisCompleted, Envelope
from shared.messaging import Broker, QueueSpec
from shared.outbox import add_to_outbox
from tests.chaos.cluster import Node, RabbitCluster
from tests.conftest import eventually
from tests.integration.test_ops_readiness import outbox_runtime
from tests.ops_helpers import HANDLED, PlaybookHandler, diagnosis_completed, handled_rows


def node_of(cluster: RabbitCluster, broker: Broker) -> Node:
    """The cluster node a broker connection is on now."""
    assert broker.connection is not None
    return next(node for node in cluster.nodes if node.port == broker.connection.url.port)


def url_without(cluster: RabbitCluster, node: Node) -> str:
    """``BRINK_AMQP_URL`` listing every node but ``node``: a client that must not be caught by its stop."""
    return "amqp://guest:guest@" + ",".join(n.address for n in cluster.nodes if n is not node) + "/"


@asynccontextmanager
async def connected(url: str) -> AsyncIterator[Broker]:
    broker = Broker(url)
    await broker.connect()
    try:
        yield broker
    finally:
        await broker.close()


async def publish_confirmed(broker: Broker, envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        await broker.publish(envelope)


async def test_a_consumer_whose_node_stops_goes_on_consuming_through_another_node(
    cluster: RabbitCluster, postgres_url: str
) -> None:
    handler = PlaybookHandler(known_playbooks={"price-objection"})
    spec = QueueSpec(name=f"failover.{uuid.uuid4().hex[:8]}", routing_keys=(DiagnosisCompleted.TYPE,), retry_delays=())
    engine = make_engine(postgres_url)
    async with connected(cluster.url) as consumer_broker:
        consumer = Consumer(
            spec=spec,
            handlers={DiagnosisCompleted.TYPE: handler},
            broker=consumer_broker,
            sessions=make_sessionmaker(engine),
            handled=HANDLED,
        )
        await consumer.start()
        try:
            stopped = node_of(cluster, consumer_broker)
            async with connected(url_without(cluster, stopped)) as publisher:
                before = [diagnosis_completed() for _ in range(10)]
                await publish_confirmed(publisher, before)
                await eventually(lambda: asyncio.sleep(0, len(handler.processed) == 10), timeout=30)

                await asyncio.to_thread(cluster.stop_node, stopped)
                after = [diagnosis_completed() for _ in range(10)]
                await publish_confirmed(publisher, after)

                expected = sorted(str(e.id) for e in before + after)
                await eventually(lambda: asyncio.sleep(0, sorted(handler.processed) == expected), timeout=90)
            assert node_of(cluster, consumer_broker) is not stopped  # the same consumer, on another node
            await asyncio.sleep(1)  # room for a stray second handling to show up
            assert sorted(handler.processed) == expected
            assert await handled_rows(postgres_url, spec.name) == 20
        finally:
            await consumer.stop()
            await engine.dispose()


async def test_the_outbox_relay_confirms_its_rows_through_another_node_when_its_node_stops(
    cluster: RabbitCluster, postgres_url: str
) -> None:
    async with outbox_runtime(postgres_url, cluster.url) as runtime:
        assert runtime.relay is not None and runtime.outbox is not None
        stopped = node_of(cluster, runtime.broker)
        spec = QueueSpec(name=f"relayed.{uuid.uuid4().hex[:8]}", routing_keys=("opstest.ping",), retry_delays=())
        async with connected(url_without(cluster, stopped)) as reader:
            await reader.declare_queue(spec)

            async def stage(count: int) -> None:
                async with transaction(runtime.sessions) as session:
                    for _ in range(count):
                        envelope = Envelope(type="opstest.ping", correlation_id="failover", source="opstest", data={})
                        await add_to_outbox(session, runtime.outbox, envelope)

            async def pending() -> int:
                async with transaction(runtime.sessions) as session:
                    query = select(func.count()).where(runtime.outbox.c.published_at.is_(None))
                    return int(await session.scalar(query.select_from(runtime.outbox)) or 0)

            async def relayed_everything() -> bool:
                try:
                    await runtime.relay.publish_pending()
                except Exception:  # the relay's node is gone: rows wait for the next attempt
                    return False
                return await pending() == 0

            await stage(10)
            await eventually(relayed_everything, timeout=30, interval=0.2)

            await asyncio.to_thread(cluster.stop_node, stopped)
            await stage(10)
            await eventually(relayed_everything, timeout=90, interval=0.5)
            assert node_of(cluster, runtime.broker) is not stopped

            async def queued() -> int:
                return (await reader.queue_depths([spec.name]))[spec.name][0]

            async def queued_is(count: int) -> bool:
                return await queued() == count

            # Every row published exactly once: the ten before the stop and the ten confirmed by another node.
            await eventually(lambda: queued_is(20), timeout=30)
            await asyncio.sleep(1)
            assert await queued() == 20
