"""A private PostgreSQL database and RabbitMQ virtual host per run, and the processes under test."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.commands import delete_vhost, rabbitmqctl

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("BRINK_BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE_URL = os.environ.get("BRINK_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
SERVICES = ("intake", "diagnosis", "outreach")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stage:
    """Where this run's services live: database, vhost, secrets, ports."""

    name: str
    dsn: str
    database_url: str
    amqp_url: str
    vhost: str
    secret: str
    token: str
    ports: dict[str, int] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        """The BRINK_* settings every service process gets; logging kept off the hot path."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("BRINK_")}
        env.update(
            {
                "BRINK_DATABASE_URL": self.database_url,
                "BRINK_AMQP_URL": self.amqp_url,
                "BRINK_API_TOKENS": self.token,
                "BRINK_STRIPE_WEBHOOK_SECRETS": self.secret,
                "BRINK_LOG_LEVEL": "WARNING",
                "BRINK_HOST": "127.0.0.1",
                "PYTHONPATH": str(ROOT),
            }
        )
        for service, port in self.ports.items():
            env[f"BRINK_{service.upper()}_PORT"] = str(port)
        # BENCH_BRINK_PREFETCH=128 runs the services with BRINK_PREFETCH=128: settings compared in the same harness.
        env.update({key[len("BENCH_") :]: value for key, value in os.environ.items() if key.startswith("BENCH_BRINK_")})
        return env


@asynccontextmanager
async def private_stage() -> AsyncIterator[Stage]:
    """Create the database (migrated) and the vhost; drop both at the end, whatever happened."""
    import asyncpg

    from shared.migrate import upgrade

    name = f"brink_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    await admin.execute(f'CREATE DATABASE "{name}"')
    vhost = f"brink-bench-{uuid.uuid4().hex[:10]}"
    dsn = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    stage = Stage(
        name=name,
        dsn=dsn,
        database_url=dsn.replace("postgresql://", "postgresql+asyncpg://"),
        amqp_url=f"{AMQP_BASE_URL.rstrip('/')}/{vhost}",
        vhost=vhost,
        secret=f"whsec_bench_{uuid.uuid4().hex}",
        token=f"bench-{uuid.uuid4().hex}",
        ports={service: free_port() for service in SERVICES},
    )
    try:
        await asyncio.to_thread(rabbitmqctl, "add_vhost", vhost, timeout=120)
        await asyncio.to_thread(rabbitmqctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*", timeout=120)
        await asyncio.to_thread(upgrade, stage.database_url)
        yield stage
    finally:
        try:
            await asyncio.to_thread(delete_vhost, vhost, timeout=120)
        except (subprocess.SubprocessError, OSError) as error:
            print(f"bench: could not delete vhost {vhost}: {error}", file=sys.stderr)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@dataclass
class Process:
    """A child process we started, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def pids(self) -> list[int]:
        """The process and its descendants (a service may serve from several worker processes)."""
        return [self.pid, *descendants(self.pid)]

    def peak_rss_mb(self) -> float | None:
        """VmHWM, the resident-set high-water mark, summed over the service's processes."""
        peaks = [peak for pid in self.pids if (peak := high_water_mb(pid)) is not None]
        return sum(peaks) if peaks else None

    def pause(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.pids:
            os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        self.resume()
        self.popen.terminate()
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def high_water_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, read from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, pending = [], [pid]
    while pending:
        children = parents.get(pending.pop(), [])
        found += children
        pending += children
    return found


def spawn(name: str, args: list[str], env: dict[str, str], logs: Path) -> Process:
    """Start ``python args...`` in the run's own log directory (so no ``.env`` file is read) with output to a log.

    Not the shared temporary directory: ``python -m`` puts its working directory first on the import path, and a
    stray ``/tmp/bench.py`` left there by someone else was imported instead of this package (the peer phase died).
    """
    log = logs / f"{name}.log"
    handle = log.open("wb")
    popen = subprocess.Popen([sys.executable, *args], env=env, cwd=logs, stdout=handle, stderr=subprocess.STDOUT)
    return Process(name=name, popen=popen, log=log)


async def wait_healthy(process: Process, port: int, timeout: float = 60.0) -> None:
    """Until ``/healthz`` answers 200; fails with the process's last log lines if it dies or hangs."""
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{process.name} did not become healthy in {timeout:.0f} s:\n{process.tail()}")
