"""A private three-node RabbitMQ cluster for the failover tests, started once per module (about 30 s) and never the
machine's shared node; every test starts with all three nodes running, and the nodes stop with the module rather
than stay up for the rest of the suite."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest

from tests.chaos.cluster import RabbitCluster
from tests.chaos.infra import RABBITMQ_BIN
from tests.conftest import unavailable


@pytest.fixture(scope="module")
async def rabbit_cluster() -> AsyncIterator[RabbitCluster]:
    if not (RABBITMQ_BIN / "rabbitmq-server").exists() or not shutil.which("erl"):
        unavailable("RabbitMQ (rabbitmq-server, to start a private cluster)", FileNotFoundError(RABBITMQ_BIN))
    cluster = RabbitCluster()
    try:
        await asyncio.to_thread(cluster.start)
    except Exception as error:
        await asyncio.to_thread(cluster.cleanup)
        unavailable("a private RabbitMQ cluster", error)
    yield cluster
    await asyncio.to_thread(cluster.cleanup)


@pytest.fixture
async def cluster(rabbit_cluster: RabbitCluster) -> RabbitCluster:
    """The private cluster with every node running (a test before may have stopped one)."""
    for node in rabbit_cluster.nodes:
        if not node.running:
            await asyncio.to_thread(rabbit_cluster.start_node, node)
    await asyncio.to_thread(rabbit_cluster.wait_until_whole, timeout=120)
    return rabbit_cluster
