"""The diagnosis engine without a broker or a database: symptoms, ranking, evidence, verdicts, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from services.diagnosis.classifier import ROOT_CAUSES, StatedReason, normalise_symptom
from services.diagnosis.engine import CaseFacts, diagnose_case
from services.diagnosis.evaluation.run import evaluate, load_scenarios
from services.diagnosis.rules import DEFAULT_RULES, RulesError, load_rules, parse_rules
from services.diagnosis.verdict import Attempt

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
RULES = load_rules()


def facts(
    *,
    feedback: str | None = None,
    comment: str | None = None,
    source: str = "stripe",
    billing_reason: str | None = None,
    signals: dict | None = None,
    history: list[Attempt] | None = None,
    mrr: float | None = 500,
    days_left: float | None = 20,
) -> CaseFacts:
    return CaseFacts(
        stated=StatedReason(
            source=source,
            billing_reason=billing_reason,
            feedback=feedback,
            comment=comment,
            involuntary=billing_reason == "payment_failed",
        ),
        signals=signals or {},
        history=history or [],
        mrr_major=mrr,
        effective_at=NOW + timedelta(days=days_left) if days_left is not None else None,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("pattern", "least", "top1_floor", "verdict_floor"),
    [
        ("scenarios_*.yaml", 180, 0.95, 0.95),  # the rules were tuned on these
        ("holdout_*.yaml", 20, 0.90, 0.90),  # never used for tuning
        ("never_tuned_scenarios.yaml", 60, 0.92, 0.95),  # written before the rules were read, never tuned on (issue 21)
        ("never_tuned_2_scenarios.yaml", 80, 0.92, 0.95),  # written from DESIGN.md alone, scored once (issue 21)
    ],
)
def test_each_set_of_scenarios_meets_its_floor(
    pattern: str, least: int, top1_floor: float, verdict_floor: float
) -> None:
    scenarios = load_scenarios(pattern=pattern)
    report = evaluate(scenarios)
    assert len(scenarios) >= least
    assert set(ROOT_CAUSES) <= {s["expect"].get("root_cause") for s in scenarios}
    assert {s["source"] for s in scenarios} == {"stripe", "chargebee"}
    assert any(not s.get("feedback") and not s.get("comment") for s in scenarios)
    assert report.top1 >= top1_floor, f"{pattern}: top-1 root-cause accuracy fell to {report.top1:.1%}"
    assert report.verdict >= verdict_floor, f"{pattern}: verdict accuracy fell to {report.verdict:.1%}"


@pytest.mark.parametrize(
    ("stated", "symptom"),
    [
        (StatedReason(source="stripe", feedback="too_expensive"), "too_expensive"),
        (StatedReason(source="chargebee", feedback="Too Expensive"), "too_expensive"),
        (StatedReason(source="chargebee", feedback="Business closed"), "business_closed"),
        (StatedReason(source="chargebee", feedback="Budget constraints"), "budget_cut"),
        (
            StatedReason(source="chargebee", feedback="Others", comment="boss says we're cutting back on software"),
            "budget_cut",
        ),
        (StatedReason(source="stripe", feedback="other", comment="honestly it kept crashing on us"), "low_quality"),
        (
            StatedReason(source="stripe", feedback="unused", billing_reason="payment_failed", involuntary=True),
            "payment_failed",
        ),
        (StatedReason(source="chargebee", billing_reason="no_card"), "payment_failed"),
        (StatedReason(source="chargebee", feedback="Others"), "other"),
        (StatedReason(source="stripe"), "unknown"),
    ],
)
def test_the_stated_reason_is_normalised_to_a_symptom(stated: StatedReason, symptom: str) -> None:
    assert normalise_symptom(stated, RULES) == symptom


def test_every_hypothesis_carries_its_evidence() -> None:
    finding = diagnose_case(
        facts(
            feedback="too_expensive",
            comment="We never really got it working.",
            signals={"usage": {"key_feature_adoption": 0.1, "trend": "flat"}},
        )
    )
    assert finding.hypotheses and all(h.evidence for h in finding.hypotheses)
    top = finding.hypotheses[0]
    assert top.root_cause == "poor_implementation"
    assert {clue.signal for clue in top.evidence} >= {"symptom", "comment", "usage.key_feature_adoption"}
    assert sum(clue.weight for clue in top.evidence) == pytest.approx(top.score)
    assert [h.confidence for h in finding.hypotheses] == sorted(
        (h.confidence for h in finding.hypotheses), reverse=True
    )


def test_changing_one_signal_changes_the_ranking_for_the_reason_shown() -> None:
    signals = {
        "usage": {"active_users": 6, "licensed_seats": 20, "key_feature_adoption": 0.2, "trend": "declining"},
        "stakeholders": {"champion_left": False},
    }
    before = diagnose_case(facts(feedback="unused", signals=signals))
    signals["stakeholders"] = {"champion_left": True}
    after = diagnose_case(facts(feedback="unused", signals=signals))

    assert before.root_cause == "poor_implementation"
    assert after.root_cause == "champion_left"
    reason = next(c for c in after.hypotheses[0].evidence if c.signal == "stakeholders.champion_left")
    assert reason.weight > 0 and "champion has left" in reason.detail
    # Before, the same signal argued against it: the whole swing is that one signal, and it says so.
    assert "champion_left" not in [h.root_cause for h in before.hypotheses]
    old_top = next(h for h in after.hypotheses if h.root_cause == "poor_implementation")
    assert old_top.score == before.hypotheses[0].score  # nothing else moved


def test_pursue_a_good_fit_with_a_clear_cause() -> None:
    finding = diagnose_case(
        facts(
            feedback="too_complex",
            comment="Nobody ever showed us how it works.",
            signals={"onboarding": {"completed": False}},
        )
    )
    assert (finding.decision, finding.reason, finding.recommended_playbook) == ("pursue", None, "rocky_onboarding")
    assert finding.priority > 0


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (facts(feedback="too_expensive", signals={"company": {"distress": True}}), "company distress"),
        (
            facts(
                feedback="too_expensive", comment="It's just me, a freelancer.", signals={"company": {"icp_fit": 10}}
            ),
            "not the ideal customer profile",
        ),
        (
            facts(
                feedback="missing_features",
                comment="We need offline mode.",
                history=[Attempt("honest_fit_review", "failed")],
            ),
            "wrong fit after an honest attempt",
        ),
        (
            # Nothing more said than "switched": the failed fit review itself settles it, not a new discovery.
            facts(feedback="switched_service", history=[Attempt("honest_fit_review", "declined")]),
            "wrong fit after an honest attempt",
        ),
    ],
)
def test_move_on_with_the_reason(case: CaseFacts, reason: str) -> None:
    finding = diagnose_case(case)
    assert (finding.decision, finding.reason, finding.recommended_playbook) == ("move_on", reason, "move_on")
    assert finding.priority == 0


def test_discover_when_too_little_is_known_and_say_what_to_ask() -> None:
    finding = diagnose_case(facts(source="chargebee", feedback="Others"))
    assert (finding.decision, finding.recommended_playbook) == ("discover", "discover")
    assert finding.unknowns and all(u.questions for u in finding.unknowns)


def test_unknowns_list_the_signals_not_yet_known() -> None:
    finding = diagnose_case(
        facts(
            feedback="unused",
            comment="The team never wanted to use it.",
            signals={"usage": {"active_users": 2, "licensed_seats": 20}},
        )
    )
    unknown = next(u for u in finding.unknowns if u.root_cause == "stakeholders_not_bought_in")
    assert "stakeholders.users_in_evaluation" in unknown.signals_to_check
    assert "usage.seat_utilisation" not in unknown.signals_to_check  # already known
    asked = {question.id: question for question in unknown.questions}
    assert asked["implementer"].text == "Who was tasked with implementing it?"
    assert set(asked["implementer_on_board"].choices) == {"yes", "no", "not sure"}


def test_an_exhausted_playbook_is_not_recommended_again() -> None:
    tried = [Attempt(move, "failed") for move in RULES.root_causes["stakeholders_not_bought_in"].playbook_moves]
    case = facts(
        feedback="unused",
        comment="The reps never wanted to use it.",
        signals={
            "stakeholders": {"users_in_evaluation": False},
            "usage": {"active_users": 3, "licensed_seats": 30, "key_feature_adoption": 0.1},
        },
    )
    fresh, after = diagnose_case(case), diagnose_case(facts(**{**_kwargs(case), "history": tried}))
    assert fresh.recommended_playbook == "stakeholders_not_bought_in"
    assert after.root_cause == "stakeholders_not_bought_in"  # still the diagnosis...
    assert after.recommended_playbook == "poor_implementation"  # ...but the next cause is tried instead
    assert set(after.avoid) == {a.action for a in tried}
    assert after.tried == [f"{a.action}: failed" for a in tried]


def test_a_lost_case_counts_as_its_whole_playbook_failing() -> None:
    lost = Attempt("poor_implementation playbook", "lost", playbook="poor_implementation", whole_playbook=True)
    finding = diagnose_case(facts(feedback="unused", signals={"usage": {"key_feature_adoption": 0.05}}, history=[lost]))
    assert finding.root_cause == "poor_implementation"
    assert finding.recommended_playbook != "poor_implementation"
    assert finding.avoid == []  # no single action to avoid, the playbook as a whole


def test_priority_grows_with_revenue_and_urgency() -> None:
    case = {"feedback": "too_complex", "signals": {"onboarding": {"completed": False}}}
    small = diagnose_case(facts(**case, mrr=100, days_left=50)).priority
    big = diagnose_case(facts(**case, mrr=5000, days_left=50)).priority
    urgent = diagnose_case(facts(**case, mrr=5000, days_left=2)).priority
    assert 0 < small < big < urgent <= 100


def test_a_lead_tunes_the_rules_file_without_code(tmp_path: Path) -> None:
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    case = facts(feedback="too_expensive", signals={"company": {"budget_freeze": True}})
    assert diagnose_case(case, parse_rules(raw)).root_cause == "executive_mandate"
    raw["root_causes"]["executive_mandate"]["signals"][0]["weight"] = 0
    assert diagnose_case(case, parse_rules(raw)).root_cause == "poor_implementation"


def test_a_broken_rule_is_refused_with_where_it_is() -> None:
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["root_causes"]["known_issue"]["phrases"].append({"match": "(unclosed", "weight": 1})
    with pytest.raises(RulesError, match=r"root_causes\.known_issue\.phrases.*\(unclosed"):
        parse_rules(raw)
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["root_causes"]["not_icp"]["signals"].append({"signal": "company.icp_fit", "weight": 1})
    with pytest.raises(RulesError, match=r"root_causes\.not_icp\.signals"):
        parse_rules(raw)
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["root_causes"]["not_icp"]["signals"][0]["signal"] = "company.icp_fitt"
    with pytest.raises(RulesError, match=r"unknown signal 'company\.icp_fitt'"):
        parse_rules(raw)
    unquoted = yaml.safe_load("{signal: company.icp_fit, below: 30, weight: 1, says: far off, sadly}")
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["root_causes"]["not_icp"]["signals"].append(unquoted)
    with pytest.raises(RulesError, match="quote text with commas"):
        parse_rules(raw)


def _kwargs(case: CaseFacts) -> dict:
    return {
        "feedback": case.stated.feedback,
        "comment": case.stated.comment,
        "signals": case.signals,
        "mrr": case.mrr_major,
        "days_left": 20,
    }


def test_the_implementer_never_on_board_is_a_signal_of_its_own() -> None:
    said = {"feedback": "unused", "comment": "It just didn't stick."}
    unsure = diagnose_case(facts(**said, signals={"stakeholders": {"implementer": "Marta (ops)"}}))
    against = diagnose_case(
        facts(**said, signals={"stakeholders": {"implementer": "Marta (ops)", "implementer_on_board": False}})
    )
    assert unsure.root_cause != "stakeholders_not_bought_in"
    assert against.root_cause == "stakeholders_not_bought_in"
    [clue] = [c for c in against.hypotheses[0].evidence if c.signal == "stakeholders.implementer_on_board"]
    assert clue.weight > 0 and "never on board" in clue.detail


def test_the_buyer_gone_points_to_finding_a_new_champion() -> None:
    finding = diagnose_case(facts(feedback="other", signals={"stakeholders": {"buyer": None, "buyer_left": True}}))
    assert finding.root_cause == "champion_left"
    assert any(c.signal == "stakeholders.buyer_left" for c in finding.hypotheses[0].evidence)


def test_a_word_added_to_a_list_is_read_by_every_phrase_naming_it() -> None:
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    case = facts(source="chargebee", feedback="Others", comment="Our sponsor emigrated to Canada in the spring.")
    assert diagnose_case(case, parse_rules(raw)).decision == "discover"
    raw["words"]["departure"].append("emigrated")
    finding = diagnose_case(case, parse_rules(raw))
    assert (finding.root_cause, finding.decision) == ("champion_left", "pursue")
    assert "emigrated" in finding.hypotheses[0].evidence[0].detail


def test_a_phrase_naming_no_word_list_is_refused_with_where_it_is() -> None:
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["root_causes"]["champion_left"]["phrases"].append({"match": "{person} {vanished}", "weight": 1})
    with pytest.raises(RulesError, match=r"root_causes\.champion_left\.phrases\[\d+\].*no word list \{vanished\}"):
        parse_rules(raw)
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["words"]["departure"] = "left"
    with pytest.raises(RulesError, match=r"words\.departure: a list of words"):
        parse_rules(raw)


def test_patterns_are_written_in_lower_case_and_read_words_of_any_case() -> None:
    raw = yaml.safe_load(DEFAULT_RULES.read_text())
    raw["root_causes"]["known_issue"]["phrases"].append({"match": "SSO (is )?broken", "weight": 1})
    with pytest.raises(RulesError, match=r"root_causes\.known_issue\.phrases\[\d+\]: write the pattern 'SSO"):
        parse_rules(raw)
    shouted = diagnose_case(facts(source="chargebee", feedback="Others", comment="OUR SPONSOR RESIGNED LAST WEEK."))
    assert (shouted.root_cause, shouted.decision) == ("champion_left", "pursue")


@pytest.mark.parametrize(
    ("comment", "decision"),
    [
        # One specific thing says it and nothing says anything else: enough to act on.
        ("We have waited two months for the fix you promised.", "pursue"),
        ("Honestly it's aimed at sales teams, and we are a charity.", "pursue"),
        # The stated reason alone is a symptom, whatever its words: the disease is still to be found.
        ("Too expensive for us.", "discover"),
        ("We're reviewing our options.", "discover"),
    ],
)
def test_one_clear_clue_is_enough_to_pursue_a_stated_reason_is_not(comment: str, decision: str) -> None:
    finding = diagnose_case(facts(source="chargebee", feedback="Others", comment=comment))
    assert finding.decision == decision
    assert finding.hypotheses[0].score < RULES.discover_below  # thin in total either way
