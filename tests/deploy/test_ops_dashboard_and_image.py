"""The Grafana dashboard's queries and the Dockerfile, checked with real tools where there are some."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.deploy.metric_names import metrics_in, unknown_metrics
from tests.deploy.tools import DEPLOY, run, tool

GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "brink.json"


def dashboard_queries() -> dict[str, str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return {
        f"{panel['title']} {target['refId']}": target["expr"] for panel in panels for target in panel.get("targets", [])
    }


def test_dashboard_queries_use_only_metrics_brink_exports() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    assert unknown_metrics(queries.values()) == set()
    used = set().union(*(metrics_in(expr) for expr in queries.values()))
    for figure in (
        "brink_queue_messages",
        "brink_messages_dead_lettered_total",
        "brink_outbox_backlog",
        "brink_webhooks_total",
        "brink_cases",
        "brink_escalations_fired_total",
    ):
        assert figure in used


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query as a recording rule: a typo in PromQL fails here."""
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query_{n}", "expr": expr}
                    for n, expr in enumerate(dashboard_queries().values())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_uses_the_provisioned_datasource_and_is_provisioned() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert {panel["datasource"]["uid"] for panel in panels if "datasource" in panel} == {uid}
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "brink.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dockerfile_passes_hadolint() -> None:
    result = run(tool("hadolint"), "--failure-threshold", "warning", str(DEPLOY / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_root_image(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install brink\nUSER root\nCMD python -m services.intake\n")
    result = run(tool("hadolint"), "--failure-threshold", "warning", str(bad))
    assert result.returncode != 0 and "DL3007" in result.stdout


def test_image_is_slim_multi_stage_and_runs_as_a_user() -> None:
    lines = [line.strip() for line in (DEPLOY / "Dockerfile").read_text().splitlines()]
    stages = [line for line in lines if line.startswith("FROM ")]
    assert len(stages) == 2 and all(line.split()[1] == "python:3.11-slim" for line in stages)
    [user] = [line for line in lines if line.startswith("USER ")]
    assert user.split()[1].split(":")[0] not in ("0", "root")
    copied = " ".join(line for line in lines if line.startswith("COPY "))
    for needed in ("shared", "services", "migrations", "alembic.ini"):
        assert needed in copied
