"""The lock files pin, with hashes, a version inside every range pyproject.toml declares (regenerate them with
`make lock` after changing a dependency), and no version below the floors set for known vulnerabilities."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PINNED = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", re.MULTILINE)
# Starlette 0.39 to 0.49.0: CVE-2025-62727. python-multipart before 0.0.31: the advisory.
FLOORS = {"starlette": Version("0.49.1"), "python-multipart": Version("0.0.31")}
LAST_VULNERABLE = {"starlette": "0.49.0", "python-multipart": "0.0.30"}


def pins(lock: str) -> dict[str, Version]:
    text = (ROOT / lock).read_text()
    return {canonicalize_name(name): Version(version) for name, version in PINNED.findall(text)}


LOCKS = {
    "requirements.lock": PYPROJECT["project"]["dependencies"],
    "requirements-dev.lock": PYPROJECT["project"]["dependencies"]
    + PYPROJECT["project"]["optional-dependencies"]["dev"],
}


@pytest.mark.parametrize("lock", LOCKS, ids=LOCKS.keys())
def test_every_declared_dependency_is_pinned_within_its_range(lock: str) -> None:
    pinned = pins(lock)
    stale = []
    for line in LOCKS[lock]:
        requirement = Requirement(line)
        version = pinned.get(canonicalize_name(requirement.name))
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            stale.append(f"{line} (locked: {version})")
    assert not stale, f"run `make lock`: {stale}"


@pytest.mark.parametrize("lock", LOCKS, ids=LOCKS.keys())
def test_every_pin_has_a_hash_and_clears_the_vulnerability_floors(lock: str) -> None:
    text = (ROOT / lock).read_text()
    entries = [entry for entry in re.split(r"\n(?=[A-Za-z0-9])", text) if PINNED.match(entry)]
    assert entries and all("--hash=sha256:" in entry for entry in entries)
    pinned = pins(lock)
    for name, floor in FLOORS.items():
        assert pinned[name] >= floor, f"{name} {pinned[name]} is below {floor}"
    declared = {canonicalize_name(Requirement(line).name): Requirement(line).specifier for line in LOCKS[lock]}
    for name, vulnerable in LAST_VULNERABLE.items():
        assert not declared[name].contains(vulnerable), f"pyproject.toml admits {name} {vulnerable}"
