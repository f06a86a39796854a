"""A watcher for what a fault run starts outside its own process tree, for the exits that skip its cleanup.

RabbitMQ nodes, PostgreSQL and the services all run in sessions of their own (detached, so a fault can kill one
without the others), and a firewall table outlives any process: when the process that started them dies without
cleaning up (SIGKILL, a CI timeout, pytest stopped by SIGTERM, which skips fixture teardown), nothing else would
end them. The watcher polls that process; once it is gone, and while the run's marker file is still there (a
clean exit removes it first), it kills every process named by a pid file of the run, stops its PostgreSQL, deletes
its firewall table and removes its directories.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

WATCHER = """
import glob, json, os, shutil, signal, subprocess, sys, time
parent, will = int(sys.argv[1]), json.loads(sys.argv[2])
while os.path.exists(will["marker"]):
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        break
    time.sleep(2)
else:
    sys.exit(0)

def pids(pattern):
    for path in glob.glob(pattern):
        try:
            with open(path) as pid_file:
                yield int(pid_file.readline().strip())
        except (OSError, ValueError):
            pass

# SIGQUIT is PostgreSQL's immediate shutdown: its backends go too, and it frees its shared memory.
postmasters = [os.path.join(data, "postmaster.pid") for data in will["postgres"]]
for patterns, kill, signal_number in (
    (will["groups"], os.killpg, signal.SIGKILL),
    (will["processes"], os.kill, signal.SIGKILL),
    (postmasters, os.kill, signal.SIGQUIT),
):
    for pattern in patterns:
        for pid in pids(pattern):
            try:
                kill(pid, signal_number)
            except OSError:
                pass
if will["nft_table"]:
    subprocess.run([will["nft"], "delete", "table", "inet", will["nft_table"]], capture_output=True)
time.sleep(3)
for path in will["remove"]:
    shutil.rmtree(path, ignore_errors=True)
try:
    os.unlink(will["marker"])
except OSError:
    pass
"""


@dataclass
class Will:
    """What the watcher cleans up. Pid files are glob patterns, read when it acts: the run keeps them current."""

    marker: str
    groups: list[str] = field(default_factory=list)  # process groups (processes started in a session of their own)
    processes: list[str] = field(default_factory=list)
    postgres: list[str] = field(default_factory=list)  # data directories
    nft_table: str = ""
    nft: str = "/usr/sbin/nft"
    remove: list[str] = field(default_factory=list)


def start_watcher(will: Will) -> None:
    """Create the marker and start the watcher for this process; ``stand_down`` before a clean exit."""
    Path(will.marker).touch()
    subprocess.Popen(
        [sys.executable, "-c", WATCHER, str(os.getpid()), json.dumps(asdict(will))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stand_down(will: Will) -> None:
    """The run cleans up after itself: the watcher exits without acting (a pid in a stale file may be reused)."""
    Path(will.marker).unlink(missing_ok=True)
