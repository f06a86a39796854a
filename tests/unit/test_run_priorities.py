"""`brink run` puts webhooks first on one machine: the consumers start at a lower CPU priority by default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.settings import BrinkSettings
from shared.supervisor import CONSUMER_NICENESS, child_environment


def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> BrinkSettings:
    monkeypatch.chdir(tmp_path)  # no .env from the working directory
    for name in [name for name in os.environ if name.startswith("BRINK_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BRINK_API_TOKENS", "a-real-token-for-the-test")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return BrinkSettings()


def test_the_consumers_start_at_a_lower_priority_and_intake_at_the_normal_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen = settings(monkeypatch, tmp_path)
    assert child_environment("diagnosis", {}, chosen)["BRINK_NICENESS"] == str(CONSUMER_NICENESS)
    assert child_environment("outreach", {}, chosen)["BRINK_NICENESS"] == str(CONSUMER_NICENESS)
    assert "BRINK_NICENESS" not in child_environment("intake", {}, chosen)


def test_an_operators_own_niceness_applies_to_every_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    chosen = settings(monkeypatch, tmp_path, BRINK_NICENESS="0")
    for service in ("intake", "diagnosis", "outreach"):
        assert child_environment(service, {"BRINK_NICENESS": "0"}, chosen)["BRINK_NICENESS"] == "0"


def test_a_niceness_in_the_env_file_counts_as_the_operators_choice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("BRINK_NICENESS=3\n")
    chosen = settings(monkeypatch, tmp_path)
    assert chosen.niceness == 3
    assert "BRINK_NICENESS" not in child_environment("diagnosis", {}, chosen)  # the child reads .env itself
