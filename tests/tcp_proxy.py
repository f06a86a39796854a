"""A small TCP proxy that can be cut (live connections closed, new ones refused) and restored.

It stands between a service and the shared RabbitMQ or PostgreSQL, so a test can make a server unreachable
for that service alone without stopping it for everyone else. It can also hold back a server's close: the
client then reads the server's last words (PostgreSQL's "terminating connection") on a connection that still
looks open, as it does when the close arrives a moment later than the message.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit, urlunsplit


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``upstream_host:upstream_port`` until cut."""

    def __init__(self, upstream_host: str = "127.0.0.1", upstream_port: int = 5672) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self._closes_released = asyncio.Event()
        self._closes_released.set()

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a cut)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Stop listening (new connections are refused) and close every live connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._writers.clear()

    def hold_closes(self) -> None:
        """From now on, a connection the server closes stays open towards the client until released."""
        self._closes_released.clear()

    def release_closes(self) -> None:
        self._closes_released.set()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, upstream_writer))
        from_server = asyncio.create_task(self._pipe(upstream_reader, client_writer))
        pipes = {asyncio.create_task(self._pipe(client_reader, upstream_writer)), from_server}
        self._pipes.update(pipes)
        done, _ = await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        if from_server in done:
            await self._closes_released.wait()
        for pipe in pipes:
            pipe.cancel()
        for writer in (client_writer, upstream_writer):
            writer.close()
            self._writers.discard(writer)
        self._pipes.difference_update(pipes)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


def amqp_through(proxy: TcpProxy, amqp_url: str) -> str:
    """The AMQP URL (same credentials and virtual host) pointed at the proxy, reconnecting quickly."""
    parts = urlsplit(amqp_url)
    netloc = f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "reconnect_interval=0.5", ""))
