"""A private RabbitMQ node and a private PostgreSQL cluster that the chaos run may stop, kill and restart.

The machine's shared broker (5672) and database (5432) serve everyone else's tests: they are never touched.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.commands import run_bounded

POSTGRES_BIN = Path(os.environ.get("BRINK_CHAOS_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
RABBITMQ_BIN = Path(os.environ.get("BRINK_CHAOS_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
# The command-line tools listen on a port of their own, by default the node's distribution port plus 10,000 to 10,010:
# past 65,535 for a high random port, and eleven tools at a time at most ("Distribution failed: nodistribution").
# Any free port of a wide range instead (the tools take the first one that binds).
CLI_PORT_RANGE = {"RABBITMQ_CTL_DIST_PORT_MIN": "30000", "RABBITMQ_CTL_DIST_PORT_MAX": "60999"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, *, timeout: float, up: bool = True) -> None:
    """Wait until something accepts (or, with ``up=False``, refuses) connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        time.sleep(0.2)
    raise TimeoutError(f"port {port} still {'closed' if up else 'open'} after {timeout}s")


def _as_user(user: str) -> tuple[list[str], dict[str, str]]:
    """Run as ``user`` when we are root (initdb and RabbitMQ refuse or misbehave as root)."""
    if os.geteuid() != 0:
        return [], {}
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        return [], {}
    return ["runuser", "-u", user, "--"], {"HOME": home}


def _owned_tmpdir(prefix: str, user: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    if os.geteuid() == 0:
        try:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        except KeyError:
            pass
    return path


class PrivateRabbit:
    """A RabbitMQ node of our own, with its own name, ports and data directory (survives restarts)."""

    def __init__(self) -> None:
        self.name = f"brink-chaos-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.base = _owned_tmpdir("brink-chaos-rabbit-", "rabbitmq")
        self.prefix, self.home_env = _as_user("rabbitmq")
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        self.running = False

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.home_env,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "pid"),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(self.base / "rabbitmq-env.conf"),
            **CLI_PORT_RANGE,
        }

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return run_bounded(
            [*self.prefix, str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self._env(),
            timeout=timeout,
            cwd=self.base,  # the tools run as rabbitmq, who may not read the checkout (see RabbitCluster.tool)
        )

    def start(self) -> None:
        subprocess.run(
            [*self.prefix, str(RABBITMQ_BIN / "rabbitmq-server"), "-detached"],
            env=self._env(),
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self.base,
        )
        self.running = True
        self.ctl("wait", str(self.base / "pid"), "--timeout", "90", timeout=120)
        result = self.ctl("await_startup", "--timeout", "90", timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"private RabbitMQ did not start: {result.stderr.strip() or result.stdout.strip()}")
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        if not self.running:
            return
        self.ctl("stop", timeout=120)
        self.running = False
        wait_for_port(self.port, timeout=30, up=False)

    def queue_depths(self) -> dict[str, int]:
        """Messages (ready plus unacknowledged) in every queue of the node."""
        result = self.ctl("list_queues", "-q", "--no-table-headers", "name", "messages")
        if result.returncode != 0:
            raise RuntimeError(f"list_queues failed: {result.stderr.strip()}")
        depths = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                depths[parts[0]] = int(parts[1])
        return depths

    def cleanup(self) -> None:
        with contextlib.suppress(Exception):  # best effort: the node may be half-started
            if self.running:
                self.stop()
        pid_file = self.base / "pid"
        if pid_file.exists():
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().strip()), 9)
        shutil.rmtree(self.base, ignore_errors=True)


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory, on its own port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.base = _owned_tmpdir("brink-chaos-pg-", "postgres")
        self.data = self.base / "data"
        self.prefix, self.home_env = _as_user("postgres")
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/brink"

    def _run(self, *args: str, timeout: float = 120) -> None:
        subprocess.run(
            [*self.prefix, *args],
            env={**os.environ, **self.home_env},
            check=True,
            capture_output=True,
            timeout=timeout,
            cwd=self.base,
        )

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=300"
        self._run(
            str(POSTGRES_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.base / "postgres.log"),
            "-w",
            "-t",
            "60",
            action,
            *extra,
        )

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                str(POSTGRES_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            )
            self._pg_ctl("start")
            self.running = True
            self._run(
                str(POSTGRES_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "brink"
            )
            return
        self._pg_ctl("start")
        self.running = True

    def restart(self) -> None:
        self._pg_ctl("restart", "-m", "fast")

    def cleanup(self) -> None:
        if self.running:
            with contextlib.suppress(Exception):  # best effort
                self._pg_ctl("stop", "-m", "immediate")
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)
