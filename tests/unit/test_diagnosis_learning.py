"""Learning from outcomes: the playbook that saves most for a confirmed root cause, once enough cases closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.diagnosis.classifier import StatedReason
from services.diagnosis.engine import CaseFacts, diagnose_case
from services.diagnosis.learning import Learned, PlaybookRecord
from services.diagnosis.rules import load_rules
from services.diagnosis.verdict import Attempt

RULES = load_rules()
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def poor_implementation_case(learned: Learned | None, history: list[Attempt] | None = None) -> CaseFacts:
    return CaseFacts(
        stated=StatedReason(source="stripe", feedback="too_expensive", comment="We never got it set up properly."),
        signals={"usage": {"key_feature_adoption": 0.1, "trend": "flat"}, "onboarding": {"completed": True}},
        history=history or [],
        mrr_major=900,
        effective_at=NOW + timedelta(days=20),
        now=NOW,
        learned=learned,
    )


def learned(own: tuple[int, int], other: tuple[int, int], min_cases: int = 20) -> Learned:
    cause = "poor_implementation"
    return Learned(
        records={
            (cause, cause): PlaybookRecord(cause, cause, saved=own[0], closed=own[1]),
            (cause, "rocky_onboarding"): PlaybookRecord(cause, "rocky_onboarding", saved=other[0], closed=other[1]),
            # Another root cause's record is not this one's business.
            ("known_issue", "known_issue"): PlaybookRecord("known_issue", "known_issue", saved=30, closed=30),
        },
        min_cases=min_cases,
    )


def test_with_nothing_learnt_the_root_cause_keeps_its_own_playbook() -> None:
    finding = diagnose_case(poor_implementation_case(None), RULES)
    assert (finding.root_cause, finding.recommended_playbook, finding.playbook_choice) == (
        "poor_implementation",
        "poor_implementation",
        None,
    )


def test_after_enough_confirmed_closes_the_playbook_that_saves_more_is_recommended_with_why() -> None:
    finding = diagnose_case(poor_implementation_case(learned(own=(6, 20), other=(14, 20))), RULES)
    assert finding.root_cause == "poor_implementation" and finding.decision == "pursue"
    assert finding.recommended_playbook == "rocky_onboarding"
    choice = finding.playbook_choice
    assert choice is not None and (choice.playbook, choice.save_rate, choice.closed_cases) == (
        "rocky_onboarding",
        0.7,
        20,
    )
    assert choice.reason == (
        "rocky_onboarding saved 14 of 20 (70%) of the cases confirmed as poor_implementation, where "
        "poor_implementation saved 6 of 20 (30%): switched to the one that saves more"
    )


def test_too_few_closed_cases_change_nothing() -> None:
    for own, other in (((6, 20), (14, 19)), ((6, 19), (14, 20))):
        finding = diagnose_case(poor_implementation_case(learned(own=own, other=other)), RULES)
        assert finding.recommended_playbook == "poor_implementation", (own, other)


def test_the_own_playbook_stays_when_it_saves_as_much_and_says_so() -> None:
    finding = diagnose_case(poor_implementation_case(learned(own=(10, 20), other=(10, 20))), RULES)
    assert finding.recommended_playbook == "poor_implementation"
    assert finding.playbook_choice is not None
    assert "no playbook fit for it saves more" in finding.playbook_choice.reason


def test_the_setting_decides_how_many_cases_are_enough() -> None:
    finding = diagnose_case(poor_implementation_case(learned(own=(1, 3), other=(3, 3), min_cases=3)), RULES)
    assert finding.recommended_playbook == "rocky_onboarding"


def test_a_playbook_that_already_failed_for_the_account_is_not_switched_to() -> None:
    lost = Attempt("rocky_onboarding playbook", "lost", playbook="rocky_onboarding", whole_playbook=True)
    finding = diagnose_case(poor_implementation_case(learned(own=(6, 20), other=(14, 20)), [lost]), RULES)
    assert finding.recommended_playbook == "poor_implementation"
