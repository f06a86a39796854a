"""Prometheus configuration and alert rules, checked and unit-tested by promtool itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from tests.deploy.metric_names import metrics_in, unknown_metrics
from tests.deploy.tools import DEPLOY, run, tool

PROMETHEUS = DEPLOY / "prometheus"


def test_alert_rules_pass_promtool() -> None:
    result = run(tool("promtool"), "check", "rules", str(PROMETHEUS / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_both_scrape_configurations_pass_promtool(tmp_path: Path) -> None:
    """promtool also opens the bearer-token file, which only the running Prometheus has: the copies checked
    here point at a stand-in file, everything else unchanged."""
    token = tmp_path / "ops-token"
    token.write_text("stand-in-ops-token-for-promtool\n")
    shutil.copy(PROMETHEUS / "alerts.yml", tmp_path / "alerts.yml")
    for config in ("prometheus.yml", "prometheus-kubernetes.yml"):
        parsed = yaml.safe_load((PROMETHEUS / config).read_text())
        for job in parsed["scrape_configs"]:
            if "authorization" in job:
                job["authorization"]["credentials_file"] = str(token)
        (tmp_path / config).write_text(yaml.safe_dump(parsed))
        result = run(tool("promtool"), "check", "config", config, cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "is valid prometheus config file syntax" in result.stdout


def test_alerts_fire_on_the_series_they_are_meant_for() -> None:
    """promtool's rule unit tests: dead letters, a missing consumer, an old outbox, a rejection spike."""
    result = run(tool("promtool"), "test", "rules", "alerts.test.yml", cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with bad PromQL does not pass."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "x", "rules": [{"alert": "Broken", "expr": "max by (queue (brink_queue_messages)"}]}]}
        )
    )
    result = run(tool("promtool"), "check", "rules", str(broken))
    assert result.returncode != 0


def test_alert_rules_use_only_metrics_brink_exports() -> None:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert unknown_metrics(expressions) == set()
    used = set().union(*(metrics_in(expr) for expr in expressions))
    for needed in (
        "brink_queue_messages",
        "brink_queue_consumers",
        "brink_outbox_oldest_age_seconds",
        "brink_outbox_backlog",
        "brink_webhooks_total",
    ):
        assert needed in used


def test_the_kubernetes_scrape_sends_the_ops_token_from_the_secret() -> None:
    scrape = yaml.safe_load((PROMETHEUS / "prometheus-kubernetes.yml").read_text())["scrape_configs"]
    brink = next(job for job in scrape if job["job_name"] == "brink")
    assert brink["authorization"]["type"] == "Bearer"
    assert brink["authorization"]["credentials_file"].endswith("brink-ops-token")
    example = yaml.safe_load((PROMETHEUS.parent / "k8s" / "secret.example.yaml").read_text())
    assert "BRINK_OPS_TOKENS" in example["stringData"]
