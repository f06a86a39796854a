"""The real services as separate operating-system processes, which the chaos run may SIGKILL and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx


@dataclass
class ServiceProcess:
    """One ``python -m services.<service>`` process with its own port and log file."""

    service: str
    instance: int
    port: int
    env: dict[str, str]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.service}-{self.instance}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        """The running process's pid, for the watcher that cleans up if the run itself is killed (reaper.py)."""
        return self.workdir / f"{self.label}.pid"

    def start(self, *, timeout: float = 60) -> None:
        """Start the process and wait until it answers ``/healthz``."""
        self.launch()
        self.wait_until_healthy(timeout=timeout)

    def launch(self) -> None:
        """Start the process without waiting for it (several start faster side by side on a busy machine)."""
        self.starts += 1
        log_path = self.workdir / f"{self.label}.{self.starts}.log"
        self.logs.append(log_path)
        env = {**self.env, f"BRINK_{self.service.upper()}_PORT": str(self.port)}
        with log_path.open("wb") as log:
            # cwd is a scratch directory, so a developer's .env never leaks into the run.
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.service}"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self.process.pid}\n")

    def wait_until_healthy(self, *, timeout: float = 60) -> None:
        """Wait until the launched process answers ``/healthz``; raises if it exits or stays silent."""
        assert self.process is not None
        log_path = self.logs[-1]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.process.returncode}; see {log_path}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.label} did not answer /healthz within {timeout}s; see {log_path}")

    def kill(self) -> int:
        """SIGKILL: no shutdown hook runs, unacknowledged messages go back to the queue."""
        assert self.process is not None
        pid = self.process.pid
        os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.pid_file.unlink(missing_ok=True)
        return pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time; safe to call twice."""
        stop_all([self])

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())


def start_all(processes: Iterable[ServiceProcess], *, timeout: float = 60) -> None:
    """Launch every process, then wait until each answers: side by side their imports share the wait."""
    processes = list(processes)
    for process in processes:
        process.launch()
    for process in processes:
        process.wait_until_healthy(timeout=timeout)


def stop_all(processes: Iterable[ServiceProcess], *, timeout: float = 20) -> None:
    """SIGTERM every running process at once, then SIGKILL what has not stopped within ``timeout``."""
    processes = list(processes)
    running = [p.process for p in processes if p.process is not None and p.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for service in processes:
        if service.process is None or service.process.poll() is not None:
            service.pid_file.unlink(missing_ok=True)


@contextmanager
def running_services(
    env: dict[str, str], workdir: Path, names: tuple[str, ...] = ("intake", "diagnosis", "outreach")
) -> Iterator[dict[str, ServiceProcess]]:
    """One process per service, started in order and always stopped, for tests that need real processes."""
    from tests.chaos.infra import free_port

    processes = {
        name: ServiceProcess(service=name, instance=1, port=free_port(), env=env, workdir=workdir) for name in names
    }
    try:
        for process in processes.values():
            process.start()
        yield processes
    finally:
        for process in processes.values():
            process.stop()


def brink_env(**settings: str) -> dict[str, str]:
    """This process's environment without any BRINK_ variable, plus the given settings (``database_url=...``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BRINK_")}
    env.update({f"BRINK_{name.upper()}": value for name, value in settings.items()})
    return env


def fault_run_env(*, database_url: str, amqp_url: str, api_token: str, webhook_secret: str) -> dict[str, str]:
    """The services' settings in the fault runs: short retry delays and outbox polls, JSON logs to count events in."""
    return brink_env(
        database_url=database_url,
        amqp_url=amqp_url,
        api_tokens=api_token,
        stripe_webhook_secrets=webhook_secret,
        retry_delays_seconds="0.5,1,2",
        outbox_poll_seconds="0.2",
        host="127.0.0.1",
        log_level="INFO",
        log_format="json",
    )
