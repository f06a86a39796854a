"""`brink users` as an operator uses it, on a fresh SQLite database: the first admin, adding, listing,
a new password, deactivating, and one clear line for a mistake."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import httpx
import pytest

from services.outreach.app import build_app
from services.outreach.settings import OutreachSettings
from shared.migrate import upgrade
from tests.conftest import settings_for

ROOT = Path(__file__).resolve().parents[2]
BRINK = ROOT / ".venv" / "bin" / "brink"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'brink.db'}"
    upgrade(url)
    return url


def brink(database_url: str, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRINK_")}
    env |= {"BRINK_DATABASE_URL": database_url, "BRINK_OUTREACH_PORT": "8002"}
    return subprocess.run(
        [str(BRINK), "users", *args],
        input=password,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd="/",
        check=False,
    )


async def test_users_commands_from_a_fresh_installation(database_url: str, amqp_url: str) -> None:
    first = brink(database_url, "first-admin")
    assert first.returncode == 0, first.stderr
    printed = re.search(r"Sign in at (\S+) as (\S+) with the password (\S+)", first.stdout)
    assert printed and printed.group(1) == "http://localhost:8002/desk" and printed.group(2) == "admin@localhost"
    admin_password = printed.group(3)
    assert "people are set up" in brink(database_url, "first-admin").stdout  # never a second admin

    added = brink(
        database_url,
        *("add", "mia@example.com", "--name", "Mia", "--role", "cs_manager", "--time-zone", "Europe/Paris"),
        "--password-stdin",
        password="correct horse battery staple\n",
    )
    assert added.returncode == 0 and "added Mia <mia@example.com> as cs_manager" in added.stdout
    olga = brink(
        database_url,
        *("add", "olga@example.com", "--name", "Olga", "--role", "csm", "--manager", "mia@example.com"),
        "--password-stdin",
        password="another long password\n",
    )
    assert olga.returncode == 0, olga.stderr

    unknown_manager = brink(
        database_url,
        "add",
        "x@example.com",
        "--name",
        "X",
        "--role",
        "csm",
        "--manager",
        "nobody@example.com",
        "--no-password",
    )
    assert unknown_manager.returncode == 2
    assert unknown_manager.stderr.strip().splitlines() == [
        "brink: no person has the email 'nobody@example.com' (the manager must be added first); nothing changed"
    ]

    listing = brink(database_url, "list").stdout.splitlines()
    assert listing[0].split() == ["email", "name", "role", "manager", "time", "zone", "slack", "status"]
    olga_row = next(line for line in listing if line.startswith("olga@example.com"))
    assert olga_row.split() == ["olga@example.com", "Olga", "csm", "mia@example.com", "UTC", "-", "active"]

    # The admin's printed password works on the desk; after set-password, only the new one does.
    app = build_app(settings_for(OutreachSettings, database_url=database_url, amqp_url=amqp_url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://outreach") as desk:
            signed_in = await desk.post("/desk/signin", data={"email": "admin@localhost", "password": admin_password})
            assert signed_in.status_code == 303
            assert (await desk.get("/desk/people")).status_code == 200

            # In a thread: the served app's loop keeps running (and releasing SQLite's lock) meanwhile.
            changed = await asyncio.to_thread(
                brink,
                database_url,
                "set-password",
                "admin@localhost",
                "--password-stdin",
                password="a brand new passphrase\n",
            )
            assert changed.returncode == 0 and "1 open session ended" in changed.stdout
            assert (await desk.get("/desk/people")).status_code == 303
            old = await desk.post("/desk/signin", data={"email": "admin@localhost", "password": admin_password})
            assert old.status_code == 401
            new = await desk.post(
                "/desk/signin", data={"email": "admin@localhost", "password": "a brand new passphrase"}
            )
            assert new.status_code == 303

    off = brink(database_url, "deactivate", "olga@example.com")
    assert off.returncode == 0 and "deactivated olga@example.com" in off.stdout
    assert "inactive" in next(line for line in brink(database_url, "list").stdout.splitlines() if "olga@" in line)
