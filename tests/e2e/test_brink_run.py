"""`brink run` as a person uses it: three processes, the README's example, a case within 5 seconds, Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import STRIPE_SECRET, TOKEN

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def brink_env(postgres_url: str, amqp_url: str, tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRINK_")}
    return {
        **clean,
        "PYTHONPATH": str(ROOT),
        "BRINK_DATABASE_URL": postgres_url,
        "BRINK_AMQP_URL": amqp_url,
        "BRINK_API_TOKENS": TOKEN,
        "BRINK_STRIPE_WEBHOOK_SECRETS": STRIPE_SECRET,
        "BRINK_INTAKE_PORT": str(free_port()),
        "BRINK_DIAGNOSIS_PORT": str(free_port()),
        "BRINK_OUTREACH_PORT": str(free_port()),
        "BRINK_LOG_FORMAT": "console",
        "BRINK_HOST": "127.0.0.1",
    }


def wait_ready(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never became ready")


def services_niceness(parent: int) -> dict[str, int]:
    """The niceness of each service process ``brink run`` started, read from /proc."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[1]) == parent and b"-m" in command:
            module = command[command.index(b"-m") + 1].decode()
            found[module.removeprefix("services.")] = int(fields[16])
    return found


def test_example_from_the_readme_shows_a_case_within_five_seconds(brink_env: dict[str, str], tmp_path: Path) -> None:
    log_path = tmp_path / "run.log"
    with log_path.open("wb") as log:
        run = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "run"],
            cwd=tmp_path,
            env=brink_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        for name in ("INTAKE", "DIAGNOSIS", "OUTREACH"):
            wait_ready(f"http://127.0.0.1:{brink_env[f'BRINK_{name}_PORT']}/readyz", deadline)
        # Webhooks first on one machine: the consumers run at a lower CPU priority than intake.
        assert services_niceness(run.pid) == {"intake": 0, "diagnosis": 10, "outreach": 10}

        sent = subprocess.run(
            [sys.executable, "-m", "shared.cli", "send-test-webhook"],
            cwd=tmp_path,
            env=brink_env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.startswith("200 ")
        customer = sent.stdout.split("for customer ")[1].strip()

        started = time.monotonic()
        cases: list[dict] = []
        while time.monotonic() - started < 5 and not cases:
            response = httpx.get(
                f"http://127.0.0.1:{brink_env['BRINK_OUTREACH_PORT']}/v1/cases",
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=2,
            )
            cases = [c for c in response.json()["items"] if c["account_id"] == f"stripe:{customer}"]
            time.sleep(0.1)
        assert cases, "no case within 5 seconds; log:\n" + log_path.read_text()[-3000:]
        assert cases[0]["tasks"], "the case has no task"
    finally:
        run.send_signal(signal.SIGINT)
        exit_code = run.wait(timeout=30)
    output = log_path.read_text()
    assert exit_code == 0, output[-3000:]
    assert "brink: stopping all services" in output
    for name in ("intake", "diagnosis", "outreach"):
        assert f"{name:<9}|" in output, f"no {name} lines in the combined log"
    assert "Traceback" not in output
