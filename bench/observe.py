"""What the harness watches while load runs: CPU per process, queue depths, outbox backlogs, open cases."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from bench.infra import Process

QUEUES = ("diagnosis.cancellations", "outreach.diagnoses")
OUTBOXES = ("intake_outbox", "diagnosis_outbox")
TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait), from /proc/stat."""
    fields = [int(value) for value in open("/proc/stat").readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICKS


def process_cpu_seconds(pid: int) -> float:
    """User+system CPU seconds of one process (its threads included)."""
    parts = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / TICKS


def schedule_seconds(pids: list[int]) -> tuple[float, float]:
    """(running, waiting for a core) in seconds, summed over the threads of ``pids``, from /proc/<pid>/task/*/schedstat."""
    running = waiting = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                ran, waited, _slices = open(f"/proc/{pid}/task/{task}/schedstat").read().split()
            except (OSError, ValueError):
                continue
            running += int(ran)
            waiting += int(waited)
    return running / 1e9, waiting / 1e9


class ScheduleMeter:
    """How a process spent a phase: running, runnable but waiting for a core, or idle (waiting on I/O or peers)."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.started = (time.monotonic(), *schedule_seconds(pids))

    def stop(self) -> dict[str, float]:
        wall, running, waiting = time.monotonic(), *schedule_seconds(self.pids)
        elapsed = wall - self.started[0]
        ran, waited = running - self.started[1], waiting - self.started[2]
        return {
            "running": round(ran / elapsed, 3),
            "waiting_for_core": round(waited / elapsed, 3),
            "idle": round(max(elapsed - ran - waited, 0) / elapsed, 3),
        }


async def connect(dsn: str, *, patience: float = 60.0) -> asyncpg.Connection:
    """A connection for the harness's own queries; waits while a shared server is at max_connections."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=10)
        except (asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def pids_named(command: str) -> list[int]:
    """Processes whose command name is ``command`` (e.g. RabbitMQ's ``beam.smp``)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if open(f"/proc/{entry}/comm").read().strip() == command:
                    pids.append(int(entry))
            except OSError:
                continue
    return pids


def broker_pids(amqp_url: str) -> list[int]:
    """The RabbitMQ node serving ``amqp_url``'s port: the process holding its listening socket.

    Other work on a shared machine may run RabbitMQ nodes of its own (the chaos and cluster tests do); counting
    every ``beam.smp`` billed their CPU to this run. Without the rights to see the socket's owner, every node.
    """
    port = urlsplit(amqp_url.split(",")[0]).port or 5672
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                listening.add(f"socket:[{fields[9]}]")
    for pid in pids_named("beam.smp"):
        try:
            if any(os.readlink(fd) in listening for fd in Path(f"/proc/{pid}/fd").iterdir()):
                return [pid]
        except OSError:
            continue
    return pids_named("beam.smp")


class CpuMeter:
    """CPU used per process, per group of pids, and by the whole machine between ``start`` and ``stop``, in cores."""

    def __init__(self, processes: list[Process], groups: dict[str, list[int]] | None = None) -> None:
        self.groups = {p.name: p.pids for p in processes} | (groups or {})

    def start(self) -> None:
        self._wall = time.monotonic()
        self._machine = machine_busy_seconds()
        self._start = {name: self._per_pid(pids) for name, pids in self.groups.items()}

    def stop(
        self, *, extra: dict[str, float] | None = None, joined: dict[str, list[int]] | None = None
    ) -> dict[str, float]:
        """Cores used on average; ``extra`` adds CPU seconds measured elsewhere (the load generator),
        ``joined`` names processes of a group that started during the phase (all their CPU counts)."""
        wall = max(time.monotonic() - self._wall, 1e-9)
        used = {name: round(self._since_start(name) / wall, 3) for name in self.groups}
        for name, pids in (joined or {}).items():
            new = [pid for pid in pids if pid not in self.groups.get(name, [])]
            used[name] = round(used.get(name, 0.0) + self._cpu(new) / wall, 3)
        for name, seconds in (extra or {}).items():
            used[name] = round(seconds / wall, 3)
        accounted = sum(used.values())
        used["machine"] = round((machine_busy_seconds() - self._machine) / wall, 3)
        # Whatever else ran: other people's work on a shared machine. Large values mean noisy figures.
        used["others"] = round(max(used["machine"] - accounted, 0.0), 3)
        used["cores"] = os.cpu_count() or 1
        used["wall_s"] = round(wall, 2)
        return used

    def _since_start(self, name: str) -> float:
        """CPU the group's processes used since ``start``. A process that ended meanwhile (a PostgreSQL backend
        whose connection was replaced) counts nothing: its CPU can no longer be read, and subtracting what it had
        used before would make the group's figure smaller than what the others used, even negative."""
        now = self._per_pid(self.groups[name])
        return sum(now[pid] - before for pid, before in self._start[name].items() if pid in now)

    @staticmethod
    def _per_pid(pids: list[int]) -> dict[int, float]:
        readings = {}
        for pid in pids:
            try:
                readings[pid] = process_cpu_seconds(pid)
            except OSError:
                continue
        return readings

    @staticmethod
    def _cpu(pids: list[int]) -> float:
        total = 0.0
        for pid in pids:
            try:
                total += process_cpu_seconds(pid)
            except OSError:  # a process that ended during the phase: its CPU up to now is lost
                continue
        return total


async def database_backends(dsn: str) -> list[int]:
    """PostgreSQL backend processes connected to this run's database (ours alone)."""
    connection = await connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [row["pid"] for row in rows]
    finally:
        await connection.close()


@dataclass
class Sampler:
    """Once a second: ready messages per queue, unpublished outbox rows, open cases, services' RSS."""

    dsn: str
    amqp_url: str
    services: list[Process]
    samples: list[dict[str, Any]] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.amqp_url)
        database = await connect(self.dsn)
        started = time.time()
        try:
            while not stop.is_set():
                sample: dict[str, Any] = {"t": round(time.time() - started, 2)}
                async with connection.channel() as channel:
                    for name in QUEUES:
                        try:
                            declared = await channel.declare_queue(name, passive=True)
                            sample[name] = declared.declaration_result.message_count or 0
                        except aio_pika.exceptions.ChannelClosed:
                            break
                for table in OUTBOXES:
                    sample[table] = await database.fetchval(f"SELECT count(*) FROM {table} WHERE published_at IS NULL")
                sample["cases"] = await database.fetchval("SELECT count(*) FROM outreach_cases")
                for process in self.services:
                    sample[f"{process.name}_rss_mb"] = round(sum(rss_mb(pid) or 0.0 for pid in process.pids), 1)
                self.samples.append(sample)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)
        finally:
            await database.close()
            await connection.close()

    def peaks(self) -> dict[str, Any]:
        keys = (*QUEUES, *OUTBOXES)
        return {f"max_{key}": max((s.get(key, 0) for s in self.samples), default=0) for key in keys}


def rss_mb(pid: int) -> float | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def sessions_established(dsn: str) -> int:
    """Connections ever opened to this database (pg_stat_database.sessions): pool churn shows here."""
    connection = await connect(dsn)
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        return await connection.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
    finally:
        await connection.close()


async def count_cases(dsn: str) -> int:
    connection = await connect(dsn)
    try:
        return await connection.fetchval("SELECT count(*) FROM outreach_cases")
    finally:
        await connection.close()


async def wait_for_cases(
    dsn: str, expected: int, *, timeout: float, interval: float = 0.1, far_interval: float = 1.0
) -> float | None:
    """Wall time when ``expected`` cases exist, polling; None after ``timeout``.

    Counting the cases reads the whole table (16 ms of PostgreSQL's CPU at 50,000 cases, seen with
    auto_explain), so while fewer than 95% are there it asks once a second, and every ``interval`` after:
    the watcher's own load stays small next to what it measures, and the finish is still timed to ``interval``.
    """
    connection = await connect(dsn)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            cases = await connection.fetchval("SELECT count(*) FROM outreach_cases")
            if cases >= expected:
                return time.time()
            await asyncio.sleep(interval if cases >= 0.95 * expected else far_interval)
        return None
    finally:
        await connection.close()


# Ids asked about per poll: the oldest not yet seen, in the order they were sent. Asking for every pending id
# made each poll cost the database one index lookup per case still in the pipeline: under a backlog of
# thousands, the watcher itself loaded PostgreSQL and slowed what it measured. A case that overtakes more
# than this many older ones is seen late, so its latency can only be overstated, never understated.
WATCH_WINDOW = 100


async def watch_cases(
    dsn: str, id_of: Any, sent: Any, total: int, stop_after: float, interval: float = 0.025
) -> dict[str, float]:
    """First wall time each cancellation's case was seen; ``id_of(i)`` is the i-th id sent, ``sent()`` how many so far."""
    connection = await connect(dsn)
    seen: dict[str, float] = {}
    oldest_unseen = 0
    deadline = time.monotonic() + stop_after
    try:
        while len(seen) < total and time.monotonic() < deadline:
            while oldest_unseen < total and id_of(oldest_unseen) in seen:
                oldest_unseen += 1
            candidates = (id_of(i) for i in range(oldest_unseen, sent()))
            pending = list(itertools.islice((cid for cid in candidates if cid not in seen), WATCH_WINDOW))
            if pending:
                rows = await connection.fetch(
                    "SELECT cancellation_id FROM outreach_cases WHERE cancellation_id = ANY($1::text[])", pending
                )
                now = time.time()
                for row in rows:
                    seen[row["cancellation_id"]] = now
            await asyncio.sleep(interval)
        return seen
    finally:
        await connection.close()


async def opened_at(dsn: str, ids: list[str]) -> dict[str, float]:
    """Each case's own ``opened_at`` (set in outreach's transaction, just before its commit)."""
    connection = await connect(dsn)
    try:
        rows = await connection.fetch(
            "SELECT cancellation_id, opened_at FROM outreach_cases WHERE cancellation_id = ANY($1::text[])", ids
        )
        return {row["cancellation_id"]: row["opened_at"].timestamp() for row in rows}
    finally:
        await connection.close()


async def broker_hop(amqp_url: str, *, rate: float, count: int) -> list[float]:
    """Seconds from a confirmed persistent publish to its delivery on a quorum queue: one broker hop."""
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    latencies: list[float] = []
    try:
        publisher = await connection.channel(publisher_confirms=True)
        consumer = await connection.channel()
        queue = await consumer.declare_queue("bench.hop", durable=True, arguments={"x-queue-type": "quorum"})
        sent: dict[str, float] = {}
        done = asyncio.Event()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            latencies.append(time.perf_counter() - sent[message.message_id or ""])
            await message.ack()
            if len(latencies) >= count:
                done.set()

        tag = await queue.consume(on_message)
        start = time.perf_counter()
        for index in range(count):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[str(index)] = time.perf_counter()
            await publisher.default_exchange.publish(
                aio_pika.Message(b"x" * 1024, message_id=str(index), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key="bench.hop",
            )
        await asyncio.wait_for(done.wait(), timeout=30)
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
    finally:
        await connection.close()
    return latencies
