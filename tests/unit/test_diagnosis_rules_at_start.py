"""Diagnosis reads its rules at start (BRINK_RULES_FILE): a broken file stops it with one line naming the place."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.diagnosis.rules import DEFAULT_RULES

ROOT = Path(__file__).resolve().parents[2]


def start_diagnosis(tmp_path: Path, rules_file: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRINK_")}
    env = {
        **clean,
        "PYTHONPATH": str(ROOT),
        "BRINK_API_TOKENS": "t0k3n-abc-long-enough",
        "BRINK_RULES_FILE": str(rules_file),
        # Nothing listens here: a service that got past its rules would stop on the broker instead, saying so.
        "BRINK_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
    }
    return subprocess.run(
        [sys.executable, "-m", "services.diagnosis"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _broken(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


BUNDLED = DEFAULT_RULES.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("text", "place"),
    [
        (
            _broken(BUNDLED, "weight: 2.0}\n", 'weight: 2.0}\n      - {match: "(unclosed", weight: 1}\n'),
            r"root_causes.poor_implementation.phrases[",
        ),
        (_broken(BUNDLED, "discover_below: 2.5", "discover_below: lots"), "discover_below: 'lots' is not a number"),
        (_broken(BUNDLED, "root_causes:\n", "root_causes:\n  - [\n"), "line "),
    ],
    ids=["bad-pattern", "not-a-number", "not-yaml"],
)
def test_a_broken_rules_file_stops_the_service_with_one_line(tmp_path: Path, text: str, place: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(text, encoding="utf-8")
    result = start_diagnosis(tmp_path, rules)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"brink: rules file {rules}:") and place in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_a_missing_rules_file_stops_the_service_naming_it(tmp_path: Path) -> None:
    result = start_diagnosis(tmp_path, tmp_path / "nowhere.yaml")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"brink: rules file {tmp_path / 'nowhere.yaml'}: cannot be read")


def test_a_good_rules_file_gets_past_the_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(BUNDLED, encoding="utf-8")
    result = start_diagnosis(tmp_path, rules)
    # It went on to its next start-up check, the broker, and stopped there.
    assert result.returncode == 1
    assert "RabbitMQ is not reachable" in result.stderr
