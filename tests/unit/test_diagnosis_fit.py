"""The model fitted to confirmed cases beside the rules: cross-validated, reported, never applied."""

from __future__ import annotations

import pytest

from services.diagnosis.evaluation.fit import MIN_CASES, FitUnavailable, evidence_vector, fit_to_cases
from services.diagnosis.evaluation.from_db import fitted_model_lines
from services.diagnosis.evaluation.run import evaluate, load_scenarios
from services.diagnosis.rules import load_rules
from services.diagnosis.taxonomy import ROOT_CAUSES

RULES = load_rules()
# The tuning scenarios stand in for confirmed cases: labelled accounts with what diagnosis would have seen.
CASES = [s for s in load_scenarios() if s["expect"].get("root_cause")]


def test_the_fit_is_cross_validated_on_the_rules_evidence() -> None:
    assert len(evidence_vector(CASES[0], RULES)) == 4 * len(ROOT_CAUSES)
    fitted = fit_to_cases(CASES, RULES)
    assert fitted.folds == 5 and fitted.cases == len(CASES)
    assert 0.5 < fitted.accuracy <= 1.0  # it learns something real from the evidence, far above chance (0.1)


def test_the_report_compares_the_fit_with_the_rules_and_applies_nothing() -> None:
    report = evaluate(CASES, RULES)
    [line] = fitted_model_lines(CASES, RULES, report)
    fitted = fit_to_cases(CASES, RULES)
    assert f"top-1 {fitted.accuracy:.1%} against the rules' {report.top1:.1%}" in line
    if fitted.accuracy > report.top1:
        assert "better than the rules; not applied" in line
    else:
        assert "not better than the rules; keep the rules" in line


@pytest.mark.parametrize(
    ("cases", "reason"),
    [
        (CASES[: MIN_CASES - 1], f"needs {MIN_CASES}"),
        ([{**c, "expect": {"root_cause": "known_issue"}} for c in CASES[:30]], "over 1 root causes"),
        (
            [{**c, "expect": {"root_cause": "known_issue"}} for c in CASES[:29]]
            + [{**CASES[29], "expect": {"root_cause": "not_icp"}}],
            "needs two confirmed cases to cross-validate: not_icp",
        ),
    ],
)
def test_too_few_cases_say_why_nothing_was_fitted(cases: list[dict], reason: str) -> None:
    with pytest.raises(FitUnavailable, match=reason):
        fit_to_cases(cases, RULES)
