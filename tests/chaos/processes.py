"""The real services as separate operating-system processes, which the chaos run may SIGKILL and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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

    def start(self, *, timeout: float = 60) -> None:
        """Start the process and wait until it answers ``/healthz``."""
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
        return pid

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop in time; safe to call twice."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())


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
