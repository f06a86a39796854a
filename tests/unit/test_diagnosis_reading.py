"""Reading people's words: negation, contrast, acquisitions, pilots ending and several reasons in one comment."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from services.diagnosis.classifier import StatedReason, read_symptoms
from services.diagnosis.engine import CaseFacts, Finding, diagnose_case
from services.diagnosis.reading import ASSERTED, CONCEDED, DENIED, strongest
from services.diagnosis.rules import load_rules

RULES = load_rules()
NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


def diagnose(comment: str, *, feedback: str = "other", signals: dict | None = None) -> Finding:
    return diagnose_case(
        CaseFacts(
            stated=StatedReason(source="stripe", feedback=feedback, comment=comment),
            signals=signals or {},
            mrr_major=800,
            effective_at=NOW + timedelta(days=20),
            now=NOW,
        ),
        RULES,
    )


def symptom_of(comment: str, feedback: str = "other") -> str:
    return read_symptoms(StatedReason(source="stripe", feedback=feedback, comment=comment), RULES)[0]


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("The price is too high for us.", ASSERTED),
        ("Honestly the price isn't the issue.", DENIED),
        ("Price is not the problem.", DENIED),
        ("It is not about the price.", DENIED),
        ("No complaints about the price, it was fair.", DENIED),
        ("The price has been fine.", DENIED),
        ("The price is fine, but nobody logs in.", DENIED),
        ("The price is steep, but the real problem is adoption.", CONCEDED),
        ("Way too much for the price. However we never set it up.", CONCEDED),
        ("It did not justify the price.", ASSERTED),  # a helper's "not" says what went wrong
    ],
)
def test_a_phrase_counts_where_it_is_said_half_where_conceded_and_not_where_denied(text: str, weight: float) -> None:
    found = strongest(re.compile("price", re.IGNORECASE), text)
    assert found is not None and found[1] == weight


@pytest.mark.parametrize(
    ("comment", "symptom"),
    [
        ("Honestly, the price is not the issue. Nobody on the team uses it.", "unused"),
        ("It's too expensive for what we get.", "too_expensive"),
        ("Support has been great; the sync keeps failing though.", "low_quality"),
        ("We're not going out of business, we just switched to a tool our devs know.", "switched_service"),
        ("The price is fine, but it's too complicated for our staff.", "too_complex"),
        # "support was" is the phrase, "great" the good word right after it: praise, not a complaint.
        ("Support was great and the price fair; the app kept crashing on us.", "low_quality"),
    ],
)
def test_negation_and_contrast_decide_the_symptom(comment: str, symptom: str) -> None:
    assert symptom_of(comment) == symptom


@pytest.mark.parametrize(
    ("text", "weight"),
    [
        ("You fixed the export bug within a day.", DENIED),
        ("The export bug got resolved quickly.", DENIED),
        ("You never fixed the export bug.", ASSERTED),
        ("The export bug is still not fixed.", ASSERTED),
        ("There is an export bug.", ASSERTED),
    ],
)
def test_a_problem_already_put_right_is_no_complaint(text: str, weight: float) -> None:
    found = strongest(re.compile("bug", re.IGNORECASE), text)
    assert found is not None and found[1] == weight


def test_denying_a_closure_never_reads_as_company_distress() -> None:
    finding = diagnose("Don't worry, we're not going out of business! The team went back to spreadsheets.")
    assert finding.root_cause != "company_distress" and finding.decision != "move_on"
    assert diagnose("We are going out of business, sadly.").decision == "move_on"


def test_a_conceded_reason_weighs_half_and_the_real_one_fully() -> None:
    finding = diagnose(
        "Pricing was a bit steep, but the real problem is the export keeps failing.",
        signals={"support": {"open_tickets": 2, "known_issues": [{"tag": "export"}]}},
    )
    assert finding.root_cause == "known_issue"
    details = [clue.detail for h in finding.hypotheses for clue in h.evidence]
    assert any("keeps failing" in d and "conceded" not in d for d in details)


@pytest.mark.parametrize(
    "comment",
    [
        "We were acquired last month.",
        "We've been acquired, so we're cancelling for now.",
        "Our company merged with another firm.",
    ],
)
def test_an_acquisition_alone_is_not_distress_but_something_to_find_out(comment: str) -> None:
    finding = diagnose(comment)
    assert finding.decision == "discover" and finding.priority > 0
    assert all(h.root_cause != "company_distress" for h in finding.hypotheses)


def test_an_acquirer_deciding_for_the_users_is_a_mandate_from_above() -> None:
    finding = diagnose(
        "We were acquired and the new parent company wants everyone on their CRM.",
        feedback="switched_service",
        signals={"usage": {"active_users": 18, "licensed_seats": 20, "trend": "growing"}},
    )
    assert (finding.root_cause, finding.decision) == ("executive_mandate", "pursue")


@pytest.mark.parametrize(
    "comment",
    [
        "We're closing down the pilot.",
        "We are shutting down the trial at the end of the month.",
        "Winding down our proof of concept.",
    ],
)
def test_a_pilot_or_trial_ending_is_not_a_business_closing(comment: str) -> None:
    finding = diagnose(comment)
    assert finding.symptom != "business_closed"
    assert finding.decision == "discover"
    assert all(h.root_cause != "company_distress" for h in finding.hypotheses)


def test_a_pilot_ending_with_its_reason_is_diagnosed_by_the_reason() -> None:
    finding = diagnose(
        "We're closing down the pilot. The sales director picked it without asking us.",
        signals={"usage": {"active_users": 2, "licensed_seats": 20}},
    )
    assert (finding.root_cause, finding.decision) == ("stakeholders_not_bought_in", "pursue")


@pytest.mark.parametrize("comment", ["We're shutting down the business.", "The company is going under."])
def test_a_business_really_closing_is_still_read_as_one(comment: str) -> None:
    finding = diagnose(comment)
    assert (finding.root_cause, finding.decision) == ("company_distress", "move_on")


def test_several_reasons_in_one_comment_are_each_weighed() -> None:
    stated = StatedReason(
        source="stripe", feedback="too_expensive", comment="Too pricey, confusing, and the export crashes every time."
    )
    symptom, also = read_symptoms(stated, RULES)
    assert symptom == "too_expensive" and {"too_complex", "low_quality"} <= set(also)
    finding = diagnose(
        "Too pricey, confusing, and the export crashes every time.",
        feedback="too_expensive",
        signals={"support": {"open_tickets": 1, "known_issues": [{"tag": "export"}]}},
    )
    assert finding.root_cause == "known_issue"
    top = finding.hypotheses[0]
    assert any(c.detail == "the customer also mentioned 'low_quality'" and c.weight > 0 for c in top.evidence)
