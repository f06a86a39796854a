"""deploy/docker-compose.yml against the compose-spec JSON schema, and what Brink needs from it."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.deploy.tools import DEPLOY, run, tool

COMPOSE = DEPLOY / "docker-compose.yml"
BRINK_SERVICES = {"intake": 8000, "diagnosis": 8001, "outreach": 8002}


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def check_compose_schema(path: Path) -> tuple[int, str]:
    """check-jsonschema with the compose-spec schema it vendors (the schema Docker Compose itself uses)."""
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path))
    return result.returncode, result.stdout + result.stderr


def test_compose_file_matches_the_compose_spec_schema() -> None:
    code, output = check_compose_schema(COMPOSE)
    assert code == 0, output


def test_the_schema_check_rejects_a_misspelt_condition(tmp_path: Path) -> None:
    broken = compose()
    broken["services"]["intake"]["depends_on"] = {"migrate": {"condition": "service_finished"}}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    code, output = check_compose_schema(path)
    assert code != 0 and "service_finished" in output


def test_services_wait_for_the_migration_and_report_readiness() -> None:
    services = compose()["services"]
    assert services["migrate"]["command"] == ["brink", "migrate"]
    for name, port in BRINK_SERVICES.items():
        service = services[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert service["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
        assert f"http://127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
        assert f"{port}:{port}" in service["ports"]


def test_broker_database_and_monitoring_are_there() -> None:
    services = compose()["services"]
    assert services["rabbitmq"]["image"].endswith("-management")
    assert services["postgres"]["image"].startswith("postgres:")
    mounted = [volume.split(":")[0] for name in ("prometheus", "grafana") for volume in services[name]["volumes"]]
    for source in mounted:
        assert (DEPLOY / source).exists(), f"compose mounts {source}, which is missing"


def test_prometheus_scrapes_with_the_ops_token_every_service_is_given() -> None:
    """The services' /metrics answer only a BRINK_OPS_TOKENS bearer off loopback: Prometheus must send one."""
    spec = compose()
    assert "BRINK_OPS_TOKENS" in spec["x-brink-env"]
    for name in BRINK_SERVICES:
        assert "BRINK_OPS_TOKENS" in spec["services"][name]["environment"]
    assert spec["secrets"]["ops_token"] == {"environment": "BRINK_OPS_TOKENS"}
    assert spec["services"]["prometheus"]["secrets"] == ["ops_token"]
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]
    brink = next(job for job in scrape if job["job_name"] == "brink")
    assert brink["authorization"] == {"type": "Bearer", "credentials_file": "/run/secrets/ops_token"}
