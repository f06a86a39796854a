"""Runs the diagnosis engine over the labelled scenarios and prints how often it agrees with the labels."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from services.diagnosis.classifier import ROOT_CAUSES, StatedReason
from services.diagnosis.engine import CaseFacts, Finding, diagnose_case
from services.diagnosis.rules import Rules, load_rules
from services.diagnosis.schemas import AccountSignals
from services.diagnosis.verdict import Attempt

HERE = Path(__file__).parent
# A fixed "now", so dates written in the scenarios mean the same thing on every run.
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# The sets never used for tuning, each scored apart: they were written at different times by different people,
# and one merged figure would hide a set the rules do badly on.
UNTUNED_SETS: tuple[tuple[str, str, str], ...] = (
    ("held-out scenarios", "never used for tuning", "holdout_*.yaml"),
    (
        "never-tuned scenarios",
        "written before the rules were read, never used for tuning",
        "never_tuned_scenarios.yaml",
    ),
    ("never-tuned, second set", "written from DESIGN.md alone, never used for tuning", "never_tuned_2_scenarios.yaml"),
)


@dataclass(frozen=True)
class Outcome:
    scenario: dict[str, Any]
    finding: Finding

    @property
    def expected_cause(self) -> str | None:
        return self.scenario["expect"].get("root_cause")

    @property
    def expected_verdict(self) -> str:
        return self.scenario["expect"]["verdict"]

    @property
    def ranked(self) -> list[str]:
        return [h.root_cause for h in self.finding.hypotheses]


@dataclass
class Report:
    outcomes: list[Outcome]
    top1: float = 0.0
    top2: float = 0.0
    verdict: float = 0.0
    labelled: int = 0
    per_cause: dict[str, tuple[float, float, int]] = field(default_factory=dict)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)


def load_scenarios(directory: Path = HERE, pattern: str = "scenarios_*.yaml") -> list[dict[str, Any]]:
    """Every scenario in the files matching ``pattern``, in file order."""
    scenarios: list[dict[str, Any]] = []
    for path in sorted(directory.glob(pattern)):
        scenarios.extend(yaml.safe_load(path.read_text(encoding="utf-8")) or [])
    return scenarios


def signals_of(scenario: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scenario's signals, checked by the same model as ``PUT /signals``, stored the same way (a confirmed
    case from the database carries them as they were stored)."""
    if "stored_signals" in scenario:
        return dict(scenario["stored_signals"] or {})
    stamped = {
        group: {"observed_at": NOW.isoformat(), "source": "evaluation", **values}
        for group, values in (scenario.get("signals") or {}).items()
    }
    if not stamped:
        return {}
    checked = AccountSignals.model_validate(stamped)
    return {name: group.model_dump(mode="json", exclude_unset=True) for name, group in checked.groups().items()}


def facts_of(scenario: dict[str, Any]) -> CaseFacts:
    """The case facts a scenario describes."""
    days_left = scenario.get("days_left")
    return CaseFacts(
        stated=StatedReason(
            source=scenario.get("source"),
            billing_reason=scenario.get("billing_reason"),
            feedback=scenario.get("feedback"),
            comment=scenario.get("comment"),
            involuntary=scenario.get("involuntary")
            or scenario.get("billing_reason") in ("payment_failed", "payment_disputed"),
        ),
        signals=signals_of(scenario),
        history=[Attempt(action=action, result=result) for action, result in scenario.get("tried") or []],
        mrr_major=scenario.get("mrr"),
        effective_at=NOW + timedelta(days=days_left) if days_left is not None else None,
        now=NOW,
    )


def evaluate(scenarios: list[dict[str, Any]], rules: Rules | None = None) -> Report:
    """Diagnose every scenario and compare with its labels."""
    rules = rules or load_rules()
    outcomes = [Outcome(s, diagnose_case(facts_of(s), rules)) for s in scenarios]
    labelled = [o for o in outcomes if o.expected_cause]
    report = Report(outcomes=outcomes, labelled=len(labelled))
    report.top1 = sum(o.ranked[0] == o.expected_cause for o in labelled) / max(len(labelled), 1)
    report.top2 = sum(o.expected_cause in o.ranked[:2] for o in labelled) / max(len(labelled), 1)
    report.verdict = sum(o.finding.decision == o.expected_verdict for o in outcomes) / max(len(outcomes), 1)
    report.confusion.update((o.expected_cause, o.ranked[0]) for o in labelled if o.expected_cause is not None)
    for cause in ROOT_CAUSES:
        predicted = sum(n for (_, got), n in report.confusion.items() if got == cause)
        actual = sum(n for (want, _), n in report.confusion.items() if want == cause)
        hits = report.confusion[(cause, cause)]
        report.per_cause[cause] = (hits / predicted if predicted else 0.0, hits / actual if actual else 0.0, actual)
    return report


def render(report: Report) -> str:
    """The report as a CS lead reads it: headline figures, per cause, confusion, and the misses."""
    lines = [
        f"scenarios: {len(report.outcomes)} ({report.labelled} with a labelled root cause)",
        f"root cause top-1 accuracy: {report.top1:.1%}",
        f"root cause top-2 accuracy: {report.top2:.1%}",
        f"verdict accuracy:          {report.verdict:.1%}",
        "",
        f"{'root cause':<28}{'precision':>10}{'recall':>8}{'n':>5}",
    ]
    for cause, (precision, recall, count) in report.per_cause.items():
        lines.append(f"{cause:<28}{precision:>10.2f}{recall:>8.2f}{count:>5}")
    short = {cause: "".join(part[0] for part in cause.split("_")) for cause in ROOT_CAUSES}
    lines += [
        "",
        "confusion (rows: labelled, columns: top-1)",
        " " * 28 + "".join(f"{short[c]:>5}" for c in ROOT_CAUSES),
    ]
    for want in ROOT_CAUSES:
        lines.append(f"{want:<28}" + "".join(f"{report.confusion[(want, got)] or '.':>5}" for got in ROOT_CAUSES))
    misses = [
        o
        for o in report.outcomes
        if (o.expected_cause and o.ranked[0] != o.expected_cause) or o.finding.decision != o.expected_verdict
    ]
    lines += ["", f"still wrong ({len(misses)}):"]
    for o in misses:
        lines.append(
            f"  {o.scenario['id']}: expected {o.expected_cause or '-'}/{o.expected_verdict}, "
            f"got {o.ranked[0]}/{o.finding.decision} ({o.scenario['story']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    arguments = sys.argv[1:] if argv is None else argv
    if "--from-db" in arguments:
        from services.diagnosis.evaluation.from_db import main as from_database

        from_database(arguments)
        return
    print("== labelled scenarios (the rules were tuned on these) ==")
    print(render(evaluate(load_scenarios())))
    scenarios = load_scenarios()
    blind = evaluate([{**s, "signals": {}} for s in scenarios])
    print(
        f"\nfor comparison, the stated reason alone (signals withheld): top-1 {blind.top1:.1%}, "
        f"top-2 {blind.top2:.1%}, verdict {blind.verdict:.1%}"
    )
    for name, about, pattern in UNTUNED_SETS:
        untuned = load_scenarios(pattern=pattern)
        if untuned:
            print(f"\n== {name} ({len(untuned)}): {about} ==")
            print(render(evaluate(untuned)))
    sys.exit(0)


if __name__ == "__main__":
    main()
