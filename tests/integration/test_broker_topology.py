"""The topology on the real broker: replicated quorum queues with explicit delivery limits, dead letters that
reading never uses up, queues an earlier release declared, and a node list whose first node is down."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from urllib.parse import urlsplit

import aio_pika
import pytest

from shared import dlq
from shared.messaging import HOLDING_DELIVERY_LIMIT, REPLICAS, Broker, BrokerUnavailable, QueueSpec
from tests.chaos.infra import free_port
from tests.commands import delete_vhost, rabbitmqctl
from tests.conftest import AMQP_BASE_URL, eventually, start_brink, unavailable
from tests.ops_helpers import diagnosis_completed, send_to_queue


def vhost_of(amqp_url: str) -> str:
    vhost = urlsplit(amqp_url).path.lstrip("/")
    if not vhost:
        unavailable("a private RabbitMQ virtual host (BRINK_TEST_AMQP_URL points at a shared one)", RuntimeError())
    return vhost


@pytest.fixture
async def own_vhost() -> AsyncIterator[str]:
    """A virtual host for this test alone: what it declares is not declared already."""
    vhost = f"brink-topology-{uuid.uuid4().hex[:10]}"
    try:
        await asyncio.to_thread(rabbitmqctl, "add_vhost", vhost)
        await asyncio.to_thread(rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (subprocess.SubprocessError, OSError) as error:
        unavailable("RabbitMQ (rabbitmqctl)", error)
    yield AMQP_BASE_URL.rstrip("/") + "/" + vhost
    await asyncio.to_thread(delete_vhost, vhost)


async def test_every_quorum_queue_is_replicated_and_has_an_explicit_delivery_limit(
    postgres_url: str, amqp_url: str
) -> None:
    vhost = vhost_of(amqp_url)
    async with AsyncExitStack() as stack:
        await start_brink(stack, database_url=postgres_url, amqp_url=amqp_url)
        listed = await asyncio.to_thread(
            rabbitmqctl, "list_queues", "-p", vhost, "name", "arguments", "--formatter", "json"
        )
    queues = {queue["name"]: {key: value for key, _type, value in queue["arguments"]} for queue in json.loads(listed)}
    brink_queues = {
        name: arguments
        for name, arguments in queues.items()
        if name.split(".")[0] in {"brink", "diagnosis", "outreach"}
    }
    assert {"brink.unrouted", "diagnosis.cancellations.dead", "outreach.diagnoses.retry.0.2s"} <= set(brink_queues)
    for name, arguments in brink_queues.items():
        assert arguments["x-queue-type"] == "quorum", name
        assert arguments["x-quorum-initial-group-size"] == REPLICAS, name
        assert arguments["x-queue-leader-locator"] == "balanced", name
        # RabbitMQ 4 would apply 20 where none is set, and drop dead letters and unrouted events past it.
        holds_for_people = name.endswith(".dead") or name == "brink.unrouted"
        assert arguments["x-delivery-limit"] == (HOLDING_DELIVERY_LIMIT if holds_for_people else 10), name


async def test_reading_dead_letters_never_counts_as_a_delivery(amqp_url: str) -> None:
    queue = f"readtest.{uuid.uuid4().hex[:8]}"
    broker = Broker(amqp_url)
    await broker.connect()
    try:
        await broker.declare_queue(QueueSpec(name=queue, routing_keys=(), retry_delays=()))
    finally:
        await broker.close()
    envelope = diagnosis_completed(playbook="none")
    await send_to_queue(amqp_url, dlq.dead_queue_name(queue), envelope)

    for _ in range(25):  # more reads than RabbitMQ 4's default limit of 20
        [letter] = await dlq.list_dead_letters(amqp_url, queue)
    shown = await dlq.show_dead_letter(amqp_url, queue, str(envelope.id))

    assert letter.message_id == shown.message_id == str(envelope.id)
    # Returned with a requeue, each read counted as a delivery (x-delivery-count 25 here); put back as a copy, none.
    assert shown.headers.get("x-delivery-count", 0) == 0
    assert (await dlq.count_dead_letters(amqp_url, [queue]))[dlq.dead_queue_name(queue)] == 1


async def test_queues_an_earlier_release_declared_are_used_as_they_are(own_vhost: str) -> None:
    spec = QueueSpec(name="outreach.diagnoses", routing_keys=("diagnosis.completed",), retry_delays=(0.2,))
    connection = await aio_pika.connect(own_vhost)
    async with connection:
        channel = await connection.channel()
        # As the release before the cluster topology declared them: no replicas, no locator, no limit on dead letters.
        for name, arguments in (
            (spec.name, {k: v for k, v in spec.main_arguments().items() if not k.startswith("x-queue-l")}),
            (spec.dead_queue, {"x-queue-type": "quorum"}),
        ):
            arguments.pop("x-quorum-initial-group-size", None)
            await channel.declare_queue(name, durable=True, arguments=arguments)

    broker = Broker(own_vhost)
    await broker.connect()
    try:
        queue = await broker.declare_queue(spec)
        assert "x-quorum-initial-group-size" not in broker.topology.arguments[spec.name]
        envelope = diagnosis_completed(playbook="none")
        await broker.publish(envelope)
        message = await eventually(lambda: queue.get(no_ack=True, fail=False), timeout=10)
        assert message.message_id == str(envelope.id)
    finally:
        await broker.close()


async def test_a_node_list_whose_first_nodes_are_down_connects_to_the_live_one(amqp_url: str) -> None:
    live = urlsplit(amqp_url)
    dead_nodes = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    listed = amqp_url.replace(live.netloc, f"{live.netloc},{dead_nodes}")
    broker = Broker(listed, connect_timeout=2)
    await broker.connect()
    try:
        assert broker.is_connected
        await broker.check()  # readiness: a node answers
        envelope = diagnosis_completed(playbook="none")
        await broker.publish(envelope)  # confirmed by the live node
    finally:
        await broker.close()

    nowhere = Broker(f"amqp://guest:guest@{dead_nodes}/", connect_timeout=2)
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+/"):
        await nowhere.connect()
    with pytest.raises(BrokerUnavailable, match="no RabbitMQ node answers"):
        await nowhere.check()
