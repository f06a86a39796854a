"""A command-line tool out of time is ended with everything it started (rabbitmqctl's Erlang node above all)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from tests.commands import run_bounded
from tests.conftest import eventually


def running(pid: int) -> bool:
    """Whether the process exists and has not ended (a zombie waiting to be reaped has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


async def test_a_command_out_of_time_leaves_nothing_it_started_running(tmp_path: Path) -> None:
    started = tmp_path / "child.pid"
    # Like rabbitmqctl: a script whose real work is a child process (there an Erlang node holding a CLI port).
    script = f"sleep 300 & echo $! > {started}; wait"
    with pytest.raises(subprocess.TimeoutExpired):
        await asyncio.to_thread(run_bounded, ["sh", "-c", script], timeout=1)
    child = int(started.read_text())
    # subprocess.run's own timeout kills the script alone, and its child sleeps on.
    assert await eventually(lambda: asyncio.sleep(0, result=not running(child)))


def test_a_command_in_time_gives_its_output_and_a_failure_raises() -> None:
    assert run_bounded(["sh", "-c", "echo answered"], timeout=10).stdout == "answered\n"
    with pytest.raises(subprocess.CalledProcessError) as failure:
        run_bounded(["sh", "-c", "echo refused >&2; exit 3"], timeout=10, check=True)
    assert (failure.value.returncode, failure.value.stderr) == (3, "refused\n")
