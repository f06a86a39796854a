"""A bad setting stops a service at start with one clear line naming it, and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def start_intake(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return start_service("services.intake", tmp_path, **env)


def start_service(module: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run a service's module in ``tmp_path`` with only the given Brink settings; it is expected to stop."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BRINK_")}
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=tmp_path,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "env, line",
    [
        ({}, "brink: setting BRINK_API_TOKENS is missing"),
        (
            {"BRINK_API_TOKENS": "changeme"},
            "brink: setting BRINK_API_TOKENS is invalid: BRINK_API_TOKENS holds a placeholder",
        ),
        (
            {"BRINK_API_TOKENS": "t0k3n-abc-long-enough", "BRINK_INTAKE_PORT": "eighty"},
            "brink: setting BRINK_INTAKE_PORT is invalid",
        ),
        (
            {"BRINK_API_TOKENS": "t0k3n-abc-long-enough", "BRINK_NICENESS": "25"},
            "brink: setting BRINK_NICENESS is invalid",
        ),
        (
            {"BRINK_API_TOKENS": "t0k3n-abc-long-enough", "BRINK_INTAKE_PROCESSES": "0"},
            "brink: setting BRINK_INTAKE_PROCESSES is invalid",
        ),
        (
            {"BRINK_API_TOKENS": "t0k3n-abc-long-enough", "BRINK_CONSUMER_BATCH_SIZE": "0"},
            "brink: setting BRINK_CONSUMER_BATCH_SIZE is invalid",
        ),
        (
            {"BRINK_API_TOKENS": "t0k3n-abc-long-enough", "BRINK_STRIPE_WEBHOOK_SECRETS": "sk_live_oops"},
            "brink: setting BRINK_STRIPE_WEBHOOK_SECRETS is invalid: each Stripe webhook secret starts with whsec_",
        ),
    ],
)
def test_bad_setting_is_one_clear_line(tmp_path: Path, env: dict[str, str], line: str) -> None:
    result = start_intake(tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_broker_is_one_line_saying_where_and_how(tmp_path: Path) -> None:
    result = start_intake(
        tmp_path, BRINK_API_TOKENS="t0k3n-abc-long-enough", BRINK_AMQP_URL="amqp://guest:guest@127.0.0.1:1/"
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "brink: RabbitMQ is not reachable at 127.0.0.1:1/ (AMQPConnectionError); start it with "
        "'rabbitmq-server -detached' (or 'systemctl start rabbitmq-server'), or set BRINK_AMQP_URL"
    ]


def start_outreach(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return start_service("services.outreach", tmp_path, BRINK_API_TOKENS="t0k3n-abc-long-enough", **env)


@pytest.mark.parametrize(
    "env, line",
    [
        ({"BRINK_WORKING_HOURS": "9-5"}, "brink: setting BRINK_WORKING_HOURS is invalid: working hours '9-5' are not"),
        (
            {"BRINK_WORKING_DAYS": "mon,caturday"},
            "brink: setting BRINK_WORKING_DAYS is invalid: working day 'caturday'",
        ),
        ({"BRINK_HOLIDAYS": "2026-12-32"}, "brink: setting BRINK_HOLIDAYS is invalid: holiday list"),
        ({"BRINK_TIME_ZONE": "Europe/Atlantis"}, "brink: setting BRINK_TIME_ZONE is invalid: time zone"),
        (
            {"BRINK_SMTP_HOST": "mail.example.com"},
            "brink: settings are invalid: BRINK_SMTP_HOST needs BRINK_SMTP_SENDER",
        ),
        ({"BRINK_SMTP_TLS": "maybe"}, "brink: setting BRINK_SMTP_TLS is invalid"),
        (
            {"BRINK_SLACK_BOT_TOKEN": "changeme"},
            "brink: settings are invalid: BRINK_SLACK_BOT_TOKEN holds a placeholder",
        ),
    ],
)
def test_bad_outreach_settings_stop_it_with_one_line(tmp_path: Path, env: dict[str, str], line: str) -> None:
    result = start_outreach(tmp_path, **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.stderr


def test_a_bad_ladder_file_stops_outreach_with_one_line_naming_file_and_field(tmp_path: Path) -> None:
    ladders = tmp_path / "ladders"
    ladders.mkdir()
    (ladders / "default.yaml").write_text(
        "silence:\n  - {name: x, role: csm, action: call, title: T, delay_hours: soon}\n"
    )
    result = start_outreach(tmp_path, BRINK_LADDER_DIR=str(ladders))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        (
            f"brink: ladder {ladders / 'default.yaml'}: silence.0.delay_hours: "
            "Input should be a valid number, unable to parse string as a number"
        )
    ]


def test_a_bad_offers_file_stops_outreach_with_one_line_naming_file_and_field(tmp_path: Path) -> None:
    offers = tmp_path / "offers.yaml"
    offers.write_text(
        "currency: usd\nperiod: fortnight\nbudget_minor: 100\nmax_per_account_per_year: 1\n"
        "limits: {csm: {max_minor: 10}}\noffers: {keep: {kind: keep_subscription, title: Keep}}\n"
    )
    result = start_outreach(tmp_path, BRINK_OFFERS_FILE=str(offers))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"brink: offers file {offers}: period: Input should be"), lines
