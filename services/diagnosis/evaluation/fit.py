"""A logistic regression fitted to confirmed cases on the rules' own evidence (scikit-learn, optional: install
it with `pip install -e '.[learning]'`), cross-validated so it can be compared with the hand-written rules."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from services.diagnosis.engine import score_case
from services.diagnosis.evaluation.run import facts_of
from services.diagnosis.rules import Rules
from services.diagnosis.taxonomy import ROOT_CAUSES

MIN_CASES = 20
TEXTS = ("comment", "reason_code", "relationship_note")


class FitUnavailable(Exception):
    """No model can be fitted: scikit-learn is missing, or the cases are too few."""


@dataclass(frozen=True)
class Fitted:
    accuracy: float
    folds: int
    cases: int


def evidence_vector(scenario: dict[str, Any], rules: Rules) -> list[float]:
    """Per root cause, the weight its symptom, its phrases, its signals and its answers brought: what a fit may
    weigh differently from the rules."""
    _, _, _, ranked = score_case(facts_of(scenario), rules)
    by_cause = {scored.root_cause: scored for scored in ranked}
    vector: list[float] = []
    for cause in ROOT_CAUSES:
        totals = {"symptom": 0.0, "text": 0.0, "signal": 0.0, "answer": 0.0}
        for clue in by_cause[cause].evidence:
            if clue.signal == "symptom":
                totals["symptom"] += clue.weight
            elif clue.signal in TEXTS:
                totals["text"] += clue.weight
            elif clue.signal.startswith("answer."):
                totals["answer"] += clue.weight
            else:
                totals["signal"] += clue.weight
        vector += totals.values()
    return vector


def fit_to_cases(scenarios: list[dict[str, Any]], rules: Rules) -> Fitted:
    """Cross-validated top-1 accuracy of a logistic regression on the scenarios' evidence."""
    labels = [scenario["expect"]["root_cause"] for scenario in scenarios]
    counts = Counter(labels)
    if len(scenarios) < MIN_CASES or len(counts) < 2:
        raise FitUnavailable(f"{len(scenarios)} confirmed cases over {len(counts)} root causes; needs {MIN_CASES}, two")
    folds = min(5, *counts.values())
    if folds < 2:
        rare = sorted(cause for cause, n in counts.items() if n < 2)
        raise FitUnavailable(f"a root cause needs two confirmed cases to cross-validate: {', '.join(rare)}")
    try:
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score
    except ImportError:
        raise FitUnavailable("scikit-learn is not installed: pip install -e '.[learning]'") from None
    features = [evidence_vector(scenario, rules) for scenario in scenarios]
    scores = cross_val_score(
        LogisticRegression(max_iter=2000),
        features,
        labels,
        cv=StratifiedKFold(n_splits=folds, shuffle=True, random_state=0),
    )
    return Fitted(accuracy=float(scores.mean()), folds=folds, cases=len(scenarios))
