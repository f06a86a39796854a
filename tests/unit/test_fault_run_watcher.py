"""A fault run killed outright (SIGKILL, a CI timeout) leaves nothing it started behind: the watcher it started
ends its detached processes and removes its directories; after a clean exit the watcher touches nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import eventually
from tests.unit.test_bounded_commands import running

ROOT = Path(__file__).resolve().parents[2]


def fault_run(tmp_path: Path, *, then: str) -> tuple[subprocess.Popen[bytes], int]:
    """A stand-in for ``make cluster-chaos``: starts the watcher, a detached process with its pid file and a data
    directory, then does ``then``. Returns the run and its detached process's pid."""
    (tmp_path / "data").mkdir()
    script = textwrap.dedent(
        f"""
        import subprocess, sys, time
        from pathlib import Path
        from tests.chaos.reaper import Will, stand_down, start_watcher
        base = Path({str(tmp_path)!r})
        will = Will(marker=str(base / "watched"), groups=[str(base / "*.pid")], remove=[str(base / "data")])
        start_watcher(will)
        service = subprocess.Popen(["sleep", "300"], start_new_session=True)
        (base / "service.pid").write_text(f"{{service.pid}}\\n")
        print("started", flush=True)
        {then}
        """
    )
    run = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE)
    assert run.stdout is not None and run.stdout.readline() == b"started\n"
    return run, int((tmp_path / "service.pid").read_text())


async def test_a_run_killed_outright_leaves_none_of_its_processes_or_directories(tmp_path: Path) -> None:
    run, service = fault_run(tmp_path, then="time.sleep(300)")
    run.send_signal(signal.SIGKILL)
    run.wait()

    assert await eventually(lambda: asyncio.sleep(0, result=not running(service)), timeout=20)
    assert await eventually(lambda: asyncio.sleep(0, result=not (tmp_path / "data").exists()), timeout=20)


async def test_after_a_clean_exit_the_watcher_touches_nothing(tmp_path: Path) -> None:
    # The run cleans up itself and stands down; the pid file left behind (as if its process ended and the pid
    # went to someone else) must not be acted on.
    run, service = fault_run(tmp_path, then="stand_down(will)")
    try:
        assert run.wait(timeout=20) == 0
        await asyncio.sleep(5)  # more than the watcher's poll and its pause before removing directories
        assert running(service)
        assert (tmp_path / "data").exists()
    finally:
        os.killpg(service, signal.SIGKILL)
