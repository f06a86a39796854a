"""A serving process takes what it built at start-up out of the garbage collector's full passes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Run in a process of its own: freezing this test process's objects would keep every earlier test's garbage.
BUILD_AND_FREEZE = """
import gc, json
from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from shared.runtime import freeze_startup_objects
build_app(IntakeSettings(_env_file=None, database_url="sqlite+aiosqlite:///unused.db", api_tokens=["t" * 32],
                         amqp_url="amqp://guest:guest@127.0.0.1/", stripe_webhook_secrets=["whsec_unused-in-this-test-0123"]))
walked_before = len(gc.get_objects())
freeze_startup_objects()
print(json.dumps({"walked_before": walked_before, "walked_after": len(gc.get_objects()),
                  "frozen": gc.get_freeze_count()}))
"""


ROOT = Path(__file__).resolve().parents[2]


def test_the_objects_built_at_start_up_are_no_longer_walked_by_full_collections(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", BUILD_AND_FREEZE],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["walked_before"] > 50_000  # a built service: modules, mappers, models
    assert counts["frozen"] >= counts["walked_before"] * 0.9
    assert counts["walked_after"] < counts["walked_before"] * 0.01
