"""Schemathesis against every service's OpenAPI, over HTTP to the real processes: no 5xx, and every
response's status, content type and body match what the OpenAPI document promises."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chaos.processes import ServiceProcess, brink_env, running_services

TOKEN = "fuzz-token-" + uuid.uuid4().hex
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
MAX_EXAMPLES = 40
SEED = 20261124


@pytest.fixture(scope="module")
def services(
    sqlite_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ServiceProcess]]:
    env = brink_env(
        database_url=sqlite_url,
        amqp_url=amqp_url,
        api_tokens=TOKEN,
        host="127.0.0.1",
        stripe_webhook_secrets="whsec_fuzz_" + uuid.uuid4().hex,
        log_level="WARNING",
        chargebee_webhook_username="fuzz",
        chargebee_webhook_password="fuzz-" + uuid.uuid4().hex,
    )
    with running_services(env, tmp_path_factory.mktemp("fuzz")) as processes:
        yield processes


def figures(output: str) -> str:
    """The run's operations and test-case counts, as schemathesis prints them."""
    operations = re.search(r"Operations:\s+(\d+) selected / (\d+) total", output)
    cases = re.search(r"Test cases:\s*\n\s*(.+)", output)
    return (
        f"operations {operations.group(1) + ' of ' + operations.group(2) if operations else '?'}; "
        f"test cases: {cases.group(1).strip() if cases else '?'}"
    )


@pytest.mark.parametrize("service", ["intake", "diagnosis", "outreach"])
def test_every_operation_answers_as_documented(
    services: dict[str, ServiceProcess], service: str, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{services[service].base_url}/openapi.json",
        "-H",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--request-timeout",
        "20",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    print(f"schemathesis {service}: {figures(result.stdout)}")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "generated" in result.stdout


def test_outreach_offset_beyond_int64_is_a_client_error(services: dict[str, ServiceProcess]) -> None:
    """Schemathesis found offset=32589158477190044730 answering 500 (a database integer overflow)."""
    response = httpx.get(
        f"{services['outreach'].base_url}/v1/cases",
        params={"offset": 2**63},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 422, response.text
