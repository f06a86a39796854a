"""Account signals turned into the named facts the rules speak of. Plain Python."""

from __future__ import annotations

from datetime import datetime
from typing import Any

FEATURE_NAMES = (
    "usage.seat_utilisation",
    "usage.key_feature_adoption",
    "usage.trend",
    "usage.days_since_last_activity",
    "onboarding.completed",
    "onboarding.trained_share",
    "stakeholders.champion_left",
    "stakeholders.users_in_evaluation",
    "stakeholders.has_champion",
    "stakeholders.has_executive_sponsor",
    "stakeholders.buyer_left",
    "stakeholders.has_implementer",
    "stakeholders.implementer_on_board",
    "support.open_tickets",
    "support.known_issues",
    "billing.failed_payments",
    "billing.downgrades",
    "billing.discounts_given",
    "company.distress",
    "company.budget_freeze",
    "company.icp_fit",
)


def _ratio(part: Any, whole: Any) -> float | None:
    if isinstance(part, (int, float)) and isinstance(whole, (int, float)) and whole > 0:
        return round(min(part / whole, 1.0), 3)
    return None


def _days_since(moment: Any, now: datetime) -> float | None:
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if isinstance(moment, datetime):
        return max((now - moment).total_seconds() / 86400, 0.0)
    return None


def extract_features(signals: dict[str, dict[str, Any]], *, now: datetime) -> dict[str, Any]:
    """Facts by name (``usage.seat_utilisation``); a fact nobody sent is absent, never guessed."""
    usage = signals.get("usage") or {}
    onboarding = signals.get("onboarding") or {}
    stakeholders = signals.get("stakeholders") or {}
    support = signals.get("support") or {}
    billing = signals.get("billing") or {}
    company = signals.get("company") or {}
    seats = usage.get("licensed_seats")
    facts: dict[str, Any] = {
        "usage.seat_utilisation": _ratio(usage.get("active_users"), seats),
        "usage.key_feature_adoption": usage.get("key_feature_adoption"),
        "usage.trend": usage.get("trend"),
        "usage.days_since_last_activity": _days_since(usage.get("last_activity_at"), now),
        "onboarding.completed": onboarding.get("completed"),
        "onboarding.trained_share": _ratio(onboarding.get("trained_users"), seats or usage.get("active_users")),
        "stakeholders.champion_left": stakeholders.get("champion_left"),
        "stakeholders.users_in_evaluation": stakeholders.get("users_in_evaluation"),
        "stakeholders.has_champion": _present(stakeholders, "champion"),
        "stakeholders.has_executive_sponsor": _present(stakeholders, "executive_sponsor"),
        "stakeholders.buyer_left": stakeholders.get("buyer_left"),
        "stakeholders.has_implementer": _present(stakeholders, "implementer"),
        "stakeholders.implementer_on_board": stakeholders.get("implementer_on_board"),
        "support.open_tickets": support.get("open_tickets"),
        "support.known_issues": len(support["known_issues"]) if "known_issues" in support else None,
        "billing.failed_payments": billing.get("failed_payments"),
        "billing.downgrades": billing.get("downgrades"),
        "billing.discounts_given": len(billing["discounts_given"]) if "discounts_given" in billing else None,
        "company.distress": company.get("distress"),
        "company.budget_freeze": company.get("budget_freeze"),
        "company.icp_fit": company.get("icp_fit"),
    }
    assert set(facts) == set(FEATURE_NAMES), "FEATURE_NAMES lists what the rules may name"
    return {name: value for name, value in facts.items() if value is not None}


def _present(group: dict[str, Any], key: str) -> bool | None:
    """A named person counts as present; an explicit null as absent; a missing key as unknown."""
    if key not in group:
        return None
    return bool(group[key])


def notes_text(signals: dict[str, dict[str, Any]]) -> list[str]:
    """The free text of relationship notes, for phrase matching."""
    notes = (signals.get("relationship") or {}).get("notes") or []
    return [note["text"] if isinstance(note, dict) else str(note) for note in notes]
