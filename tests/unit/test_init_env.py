"""`brink init-env` writes development secrets readable by their owner only, and never through a planted link."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def init_env(cwd: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRINK_")}
    return subprocess.run(
        [sys.executable, "-c", "import os; os.umask(0o022); from shared.cli import main; main()", "init-env", *flags],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def env_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_the_env_file_is_owner_only_and_holds_secrets_the_services_accept(tmp_path: Path) -> None:
    result = init_env(tmp_path, "--ops-token")
    assert result.returncode == 0, result.stderr
    env_file = tmp_path / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = env_values(env_file)
    from services.intake.settings import IntakeSettings

    settings = IntakeSettings(_env_file=None, **{k.removeprefix("BRINK_").lower(): v for k, v in values.items()})
    assert settings.ops_tokens and settings.api_tokens and settings.chargebee_webhook_password is not None


def test_a_link_planted_where_the_env_file_goes_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = elsewhere / "stolen"
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / ".env").symlink_to(target)  # dangling: .env does not "exist" yet
    result = init_env(tmp_path / "project")
    assert result.returncode != 0
    assert not target.exists(), "the secrets were written through the link"
    assert "Traceback" not in result.stderr


def test_without_the_flag_no_ops_token_is_written_so_make_run_keeps_docs_on_loopback(tmp_path: Path) -> None:
    assert init_env(tmp_path).returncode == 0
    assert "BRINK_OPS_TOKENS" not in env_values(tmp_path / ".env")
