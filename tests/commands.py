"""Command-line tools run within a time bound that also ends what they started (rabbitmqctl above all).

``subprocess.run(..., timeout=)`` kills only the process it started. rabbitmqctl is a script that starts an Erlang
node, and that node kept one of the command-line tools' distribution ports (35672-35682 on the shared broker) after
its script was killed: eleven such leftovers and no rabbitmqctl could reach the shared RabbitMQ. Here the command
runs in a process group of its own, and the whole group is killed when its time is up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path

VHOST_DELETE_ATTEMPTS = 3


def run_bounded(
    command: Sequence[str],
    *,
    timeout: float,
    check: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` to completion (text output captured); on timeout kill its whole process group and raise
    ``subprocess.TimeoutExpired``; with ``check``, a non-zero exit raises ``subprocess.CalledProcessError``."""
    with subprocess.Popen(
        list(command),
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,  # a process group of its own, with everything it starts
    ) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise subprocess.TimeoutExpired(process.args, timeout, stdout, stderr) from None
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if check:
        result.check_returncode()
    return result


def rabbitmqctl(*args: str, timeout: float = 60) -> str:
    """``rabbitmqctl -q`` against the machine's RabbitMQ; its output. Fails on a non-zero exit or a timeout."""
    return run_bounded(["rabbitmqctl", "-q", *args], timeout=timeout, check=True).stdout


def delete_vhost(vhost: str, *, timeout: float = 60) -> None:
    """Delete a virtual host, tried again when a try fails or times out: one left behind keeps its quorum queues
    (and their Raft members) on the shared broker for good. One already gone counts as deleted."""
    for attempt in range(1, VHOST_DELETE_ATTEMPTS + 1):
        try:
            rabbitmqctl("delete_vhost", vhost, timeout=timeout)
            return
        except subprocess.CalledProcessError as error:
            if attempt > 1 and "does not exist" in (error.stderr or "") + (error.stdout or ""):
                return  # an earlier try deleted it, though it did not answer in time
            if attempt == VHOST_DELETE_ATTEMPTS:
                raise
        except subprocess.TimeoutExpired:
            if attempt == VHOST_DELETE_ATTEMPTS:
                raise
        time.sleep(attempt)
