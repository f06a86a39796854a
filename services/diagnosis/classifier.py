"""Symptom and root cause from what the customer said. Plain Python: no broker, no database."""

from __future__ import annotations

from dataclasses import dataclass, field

SYMPTOMS = (
    "too_expensive", "missing_features", "unused", "switched_service", "too_complex", "low_quality",
    "customer_service", "didnt_meet_needs", "budget_cut", "business_closed", "payment_failed", "other", "unknown",
)

ROOT_CAUSES = (
    "poor_implementation", "stakeholders_not_bought_in", "rocky_onboarding", "executive_mandate", "known_issue",
    "champion_left", "payment_failure", "wrong_fit", "company_distress", "not_icp",
)

# The root cause most often behind each symptom when nothing else is known.
LIKELY_CAUSE = {
    "too_expensive": "poor_implementation",
    "missing_features": "wrong_fit",
    "unused": "poor_implementation",
    "switched_service": "stakeholders_not_bought_in",
    "too_complex": "rocky_onboarding",
    "low_quality": "known_issue",
    "customer_service": "known_issue",
    "didnt_meet_needs": "stakeholders_not_bought_in",
    "budget_cut": "executive_mandate",
    "business_closed": "company_distress",
    "payment_failed": "payment_failure",
}

MOVE_ON_CAUSES = {"company_distress": "company distress", "not_icp": "not the ideal customer profile"}


@dataclass(frozen=True)
class Classification:
    symptom: str
    root_cause: str
    confidence: float
    evidence: list[tuple[str, str, float]] = field(default_factory=list)
    decision: str = "discover"
    reason: str | None = None


def symptom_from(*, feedback: str | None, billing_reason: str | None, involuntary: bool) -> str:
    """Normalise the stated reason: the billing system's own failure wins over an empty feedback."""
    if feedback in SYMPTOMS:
        return feedback
    if involuntary or billing_reason in ("payment_failed", "payment_disputed", "not_paid", "no_card"):
        return "payment_failed"
    return "other" if feedback else "unknown"


def classify(*, feedback: str | None, billing_reason: str | None, involuntary: bool) -> Classification:
    """A first diagnosis from the stated reason alone."""
    symptom = symptom_from(feedback=feedback, billing_reason=billing_reason, involuntary=involuntary)
    cause = LIKELY_CAUSE.get(symptom)
    if cause is None:
        return Classification(symptom=symptom, root_cause="poor_implementation", confidence=0.2,
                              evidence=[("stated_reason", f"stated reason {symptom!r} says little", 0.2)])
    evidence = [("stated_reason", f"customer said {symptom!r}", 0.5)]
    if cause in MOVE_ON_CAUSES:
        return Classification(symptom, cause, 0.6, evidence, "move_on", MOVE_ON_CAUSES[cause])
    return Classification(symptom, cause, 0.5, evidence, "pursue")
