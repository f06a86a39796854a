"""The load generator, run as its own process: signed Stripe webhooks over raw HTTP/1.1 keep-alive connections.

Two models. ``open``: a fixed arrival rate; each request's latency counts from its *scheduled* send time,
so a slow server shows as latency rather than as a politely slower sender (wrk2-style, no coordinated
omission). ``closed``: N connections each sending the next request as soon as the last is answered, for
the highest sustained throughput, bounded by a duration or a total count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shared.signing import stripe_signature_header

EVENT_MARK = "E" * 24
SUBSCRIPTION_MARK = "S" * 20
CUSTOMER_MARK = "C" * 20


@dataclass
class Requests:
    """Builds the i-th distinct, correctly signed ``customer.subscription.deleted`` request of a run."""

    secret: str
    tag: str
    path: str = "/webhooks/stripe"
    host: str = "127.0.0.1"
    template: bytes = field(init=False)

    def __post_init__(self) -> None:
        from tests.helpers import stripe_event, stripe_subscription

        subscription = stripe_subscription(
            subscription_id=f"sub_{SUBSCRIPTION_MARK}", customer_id=f"cus_{CUSTOMER_MARK}"
        )
        event = stripe_event("customer.subscription.deleted", subscription, event_id=f"evt_{EVENT_MARK}")
        self.template = json.dumps(event, separators=(",", ":")).encode()

    def subscription_id(self, index: int) -> str:
        return f"sub_{self.tag}{index:0{20 - len(self.tag)}d}"

    def cancellation_id(self, index: int) -> str:
        return f"stripe:{self.subscription_id(index)}"

    def build(self, index: int) -> bytes:
        unique = f"{self.tag}{index:0{20 - len(self.tag)}d}"
        body = (
            self.template.replace(SUBSCRIPTION_MARK.encode(), unique.encode())
            .replace(CUSTOMER_MARK.encode(), unique.encode())
            .replace(EVENT_MARK.encode(), (unique + "0000").encode())
        )
        signature = stripe_signature_header([self.secret], body)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Stripe-Signature: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body


class Connection:
    """One keep-alive HTTP/1.1 connection; enough of the protocol for a JSON answer with Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send(self, request: bytes) -> int:
        """Send one request and read the whole answer; returns the status code."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lowered = head.lower()
        start = lowered.find(b"content-length:")
        if start >= 0:
            end = lowered.find(b"\r\n", start)
            await self.reader.readexactly(int(lowered[start + 15 : end]))
        return status

    def close(self) -> None:
        self.writer.close()


@dataclass
class Outcome:
    """Per-request records of a run, in arrays indexed like the requests."""

    index: list[int] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    done_wall: list[float] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    errors: int = 0

    def add(self, index: int, latency: float, done_wall: float, status: int) -> None:
        self.index.append(index)
        self.latency.append(latency)
        self.done_wall.append(done_wall)
        self.status.append(status)


class Clock:
    """Monotonic time mapped onto the wall clock, so another process can line its times up with ours."""

    def __init__(self) -> None:
        self.perf0 = time.perf_counter()
        self.wall0 = time.time()

    def wall(self, perf: float) -> float:
        return self.wall0 + (perf - self.perf0)

    def perf_at(self, wall: float) -> float:
        return self.perf0 + (wall - self.wall0)


async def run_open(
    *,
    host: str,
    port: int,
    requests: Requests,
    rate: float,
    count: int,
    start_wall: float,
    max_connections: int,
    first_index: int = 0,
) -> Outcome:
    """Send ``count`` requests at ``rate`` per second from ``start_wall``; latency from each scheduled time."""
    clock = Clock()
    outcome = Outcome()
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    opened = 0
    start = clock.perf_at(start_wall)
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int, scheduled: float) -> None:
        nonlocal opened
        request = requests.build(index)
        if idle.empty() and opened < max_connections:
            opened += 1
            connection = await Connection.open(host, port)
        else:
            connection = await idle.get()
        try:
            status = await connection.send(request)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            outcome.errors += 1
            connection.close()
            opened -= 1
            return
        done = time.perf_counter()
        idle.put_nowait(connection)
        outcome.add(index, done - scheduled, clock.wall(done), status)

    for offset in range(count):
        index = first_index + offset
        scheduled = start + offset / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(index, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return outcome


async def run_closed(
    *,
    host: str,
    port: int,
    requests: Requests,
    connections: int,
    duration: float | None,
    count: int | None,
    first_index: int = 0,
) -> Outcome:
    """``connections`` senders back to back until ``duration`` seconds pass or ``count`` requests are sent."""
    clock = Clock()
    outcome = Outcome()
    next_index = first_index
    last_index = first_index + count if count is not None else None
    deadline = time.perf_counter() + duration if duration is not None else None

    async def sender() -> None:
        nonlocal next_index
        connection = await Connection.open(host, port)
        try:
            while True:
                if deadline is not None and time.perf_counter() >= deadline:
                    return
                if last_index is not None and next_index >= last_index:
                    return
                index, next_index = next_index, next_index + 1
                request = requests.build(index)
                sent = time.perf_counter()
                try:
                    status = await connection.send(request)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    outcome.errors += 1
                    connection.close()
                    connection = await Connection.open(host, port)
                    continue
                done = time.perf_counter()
                outcome.add(index, done - sent, clock.wall(done), status)
        finally:
            connection.close()

    await asyncio.gather(*(sender() for _ in range(connections)))
    return outcome


def main() -> None:
    """``python -m bench.loadgen SPEC_JSON OUT_JSON``: run one load and write its records and own CPU use."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text())
    requests = Requests(secret=spec["secret"], tag=spec["tag"], path=spec.get("path", "/webhooks/stripe"))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # plain asyncio works too, at a little more CPU per request
        pass
    wall_started = time.time()
    if spec["model"] == "open":
        outcome = asyncio.run(
            run_open(
                host=spec["host"],
                port=spec["port"],
                requests=requests,
                rate=spec["rate"],
                count=spec["count"],
                start_wall=spec["start_wall"],
                max_connections=spec.get("max_connections", 64),
                first_index=spec.get("first_index", 0),
            )
        )
    else:
        outcome = asyncio.run(
            run_closed(
                host=spec["host"],
                port=spec["port"],
                requests=requests,
                connections=spec["connections"],
                duration=spec.get("duration"),
                count=spec.get("count"),
                first_index=spec.get("first_index", 0),
            )
        )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "index": outcome.index,
        "latency": outcome.latency,
        "done_wall": outcome.done_wall,
        "status": outcome.status,
        "errors": outcome.errors,
        "wall_started": wall_started,
        "wall_ended": time.time(),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }
    args.out.write_text(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
