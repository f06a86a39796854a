"""RabbitMQ as a cluster of nodes: the node list in ``BRINK_AMQP_URL``, and a connection that fails over between them.

``amqp://user:pass@rabbit-0:5672,rabbit-1:5672,rabbit-2:5672/vhost`` names three nodes that share the credentials,
the virtual host and the query options. aio-pika's robust connection reconnects to one URL only; a
:class:`ClusterConnection` tries the nodes in turn, starting after the node it lost, so a consumer or a publisher
whose node dies is restored on a live node (its channels, declarations and consumers, as aio-pika restores them)
without the process restarting.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika import RobustConnection
from yarl import URL

from shared.logs import get_logger

log = get_logger("shared.amqp_cluster")

SCHEMES = ("amqp", "amqps")


def node_urls(url: str) -> list[str]:
    """One URL per node; ``amqp://u:p@a:5672,b:5672/v`` gives ``amqp://u:p@a:5672/v`` and ``amqp://u:p@b:5672/v``."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme not in SCHEMES:
        raise ValueError("must start with amqp:// or amqps://")
    cut = min((rest.index(mark) for mark in "/?" if mark in rest), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = authority.rpartition("@")
    nodes = [host.strip() for host in hosts.split(",")]
    if not all(nodes):
        raise ValueError("has an empty node address in its comma-separated node list")
    return [f"{scheme}://{userinfo}{at}{node}{tail}" for node in nodes]


def describe_broker(url: str) -> str:
    """The nodes of an AMQP URL and its virtual host, without the credentials: ``a:5672, b:5672/vhost``."""
    try:
        urls = [URL(node) for node in node_urls(url)]
    except ValueError:
        return "an invalid BRINK_AMQP_URL"
    hosts = ", ".join(f"{node.host or 'localhost'}:{node.port or 5672}" for node in urls)
    return f"{hosts}{urls[0].path or '/'}"


class ClusterConnection(RobustConnection):
    """A robust connection over several nodes: each reconnection tries every node once, the lost one last.

    It starts at a random node, so the instances of a service spread their connections over the cluster.
    """

    def __init__(self, url: URL, loop: asyncio.AbstractEventLoop | None = None, **kwargs: Any) -> None:
        nodes: Sequence[str] = kwargs.pop("nodes")
        super().__init__(url, loop, **kwargs)
        self.nodes = [URL(node) for node in nodes]
        self._first = secrets.randbelow(len(self.nodes))

    @property
    def node(self) -> str:
        """The node this connection uses (or last tried), as ``host:port``."""
        return f"{self.url.host}:{self.url.port}"

    # Overrides RobustConnection's private step, the one place a reconnection opens its transport: aio-pika
    # takes a single URL, and this is where the next node can be chosen (tests/cluster shows it working).
    async def _RobustConnection__connect_transport(self) -> None:
        last_error: BaseException | None = None
        for step in range(len(self.nodes)):
            index = (self._first + step) % len(self.nodes)
            self.url = self.nodes[index]
            try:
                await super()._RobustConnection__connect_transport()  # type: ignore[misc]
            except asyncio.CancelledError:
                raise
            except Exception as error:  # any failure on one node means: try the next one
                last_error = error
                log.warning("broker.node.unavailable", node=self.node, error=error.__class__.__name__)
                continue
            # Next time (this node lost), start with the one after it.
            self._first = (index + 1) % len(self.nodes)
            if last_error is not None or self.connection_attempt > 1:
                log.info("broker.node.connected", node=self.node)
            return
        assert last_error is not None
        raise last_error


async def connect_cluster(url: str, *, timeout: float) -> ClusterConnection:
    """A connected :class:`ClusterConnection` to the first node of ``url`` that answers."""
    nodes = node_urls(url)
    connection = ClusterConnection(URL(nodes[0]), nodes=nodes)
    await connection.connect(timeout=timeout)
    return connection


async def connect_any(url: str, *, timeout: float) -> aio_pika.abc.AbstractConnection:
    """A plain (not reconnecting) connection to the first node of ``url`` that answers, in the listed order."""
    last_error: BaseException | None = None
    for node in node_urls(url):
        try:
            return await aio_pika.connect(node, timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the next node may answer
            last_error = error
    assert last_error is not None
    raise last_error


async def any_node_answers(url: str, *, timeout: float) -> bool:
    """Whether at least one node accepts an AMQP connection now (each one tried at once)."""

    async def answers(node: str) -> bool:
        try:
            connection = await aio_pika.connect(node, timeout=timeout)
        except asyncio.CancelledError:
            raise
        except Exception:  # a node that does not answer is just that
            return False
        await connection.close()
        return True

    return any(await asyncio.gather(*(answers(node) for node in node_urls(url))))
