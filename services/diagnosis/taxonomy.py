"""The two taxonomies of DESIGN.md: what customers say (symptoms) and what is really wrong (root causes)."""

from __future__ import annotations

SYMPTOMS = (
    "too_expensive",
    "missing_features",
    "unused",
    "switched_service",
    "too_complex",
    "low_quality",
    "customer_service",
    "didnt_meet_needs",
    "budget_cut",
    "business_closed",
    "payment_failed",
    "other",
    "unknown",
)

ROOT_CAUSES = (
    "poor_implementation",
    "stakeholders_not_bought_in",
    "rocky_onboarding",
    "executive_mandate",
    "known_issue",
    "champion_left",
    "payment_failure",
    "wrong_fit",
    "company_distress",
    "not_icp",
)
