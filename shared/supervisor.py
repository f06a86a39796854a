"""``brink run``: every service as a child process, one combined log, Ctrl-C stops them all."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from shared.migrate import upgrade
from shared.settings import BrinkSettings, database_location, describe_error

SettingsT = TypeVar("SettingsT", bound=BaseSettings)

SERVICES = ("intake", "diagnosis", "outreach")
# With every service on one machine, webhooks come first: the consumers run at a lower CPU priority, so under
# overload intake keeps answering and their queues absorb the backlog, which drains once intake is quieter
# (measured by the benchmark's *_with_backlog phases). An operator's own BRINK_NICENESS applies to all instead.
CONSUMERS = ("diagnosis", "outreach")
CONSUMER_NICENESS = 10
COLOURS = {"intake": "\033[36m", "diagnosis": "\033[35m", "outreach": "\033[33m"}
RESET = "\033[0m"


def _label(name: str) -> str:
    text = f"{name:<9}|"
    return f"{COLOURS[name]}{text}{RESET}" if sys.stdout.isatty() else text


def _settings_or_exit(cls: type[SettingsT]) -> SettingsT:
    try:
        return cls()
    except ValidationError as error:
        print(f"brink: {describe_error(error, cls)}", file=sys.stderr)
        raise SystemExit(2) from None


def child_environment(service: str, environ: dict[str, str], settings: BrinkSettings) -> dict[str, str]:
    """The environment ``brink run`` starts a service with: the consumers at a lower priority unless the
    operator chose a niceness (in the environment or ``.env``)."""
    env = dict(environ)
    if service in CONSUMERS and "niceness" not in settings.model_fields_set:
        env["BRINK_NICENESS"] = str(CONSUMER_NICENESS)
    return env


def run_all() -> int:
    settings = _settings_or_exit(BrinkSettings)
    from shared.runtime import preflight

    preflight(settings)
    upgrade(settings.database_url.get_secret_value())
    print(
        f"brink: database at {database_location(settings.database_url)} is migrated; starting {', '.join(SERVICES)}",
        flush=True,
    )
    children = {
        name: subprocess.Popen(
            [sys.executable, "-u", "-m", f"services.{name}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=child_environment(name, dict(os.environ), settings),
            start_new_session=True,
        )
        for name in SERVICES
    }
    selector = selectors.DefaultSelector()
    for name, child in children.items():
        selector.register(child.stdout, selectors.EVENT_READ, name)  # type: ignore[arg-type]

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            print("brink: stopping all services", flush=True)
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    deadline: float | None = None
    exit_code = 0
    while selector.get_map():
        for key, _ in selector.select(timeout=0.5):
            line = key.fileobj.readline()  # type: ignore[union-attr]
            if not line:
                selector.unregister(key.fileobj)
                continue
            sys.stdout.write(f"{_label(key.data)} {line.decode(errors='replace')}")
            sys.stdout.flush()
        for name, child in children.items():
            if child.poll() is not None and not stopping:
                print(f"brink: {name} exited with code {child.returncode}; stopping the others", flush=True)
                exit_code = child.returncode or 1
                stop()
        if stopping:
            deadline = deadline or time.monotonic() + 15
            if time.monotonic() > deadline:
                for child in children.values():
                    if child.poll() is None:
                        child.kill()
    for child in children.values():
        child.wait()
    return exit_code
