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
        # A contrast set aside between commas concedes the sentence before, not the words it interrupts.
        ("The price was steep. The setup, however, was the real problem.", CONCEDED),
        ("The features are great. The price, though, is too high.", ASSERTED),
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


def test_a_phrase_found_again_inside_a_conceded_one_counts_where_it_is_asserted() -> None:
    # "group ... vetoed" starts in the conceded clause; "CIO ... vetoed", inside it, after the "but".
    pattern = re.compile(r"\b(group|cio)\b.{0,80}\bvetoed")
    found = strongest(pattern, "the pilot group loved it, but the cio vetoed the wider rollout.")
    assert found is not None and found[0].group(1) == "cio" and found[1] == ASSERTED


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


# Everyday phrasings of every symptom (issue 21), as a customer types them into a cancellation form.
EVERYDAY = [
    ("It costs too much for a team our size.", "too_expensive"),
    ("Can't justify the spend.", "too_expensive"),
    ("Way over what we want to pay.", "too_expensive"),
    ("Too pricey.", "too_expensive"),
    ("We found it overpriced.", "too_expensive"),
    ("The renewal quote doubled.", "too_expensive"),
    ("The price went up again at renewal.", "too_expensive"),
    ("We can get the same for half the money.", "too_expensive"),
    ("It's a lot of money for a small charity.", "too_expensive"),
    ("Costs more than it saves us.", "too_expensive"),
    ("Seats cost us more each year.", "too_expensive"),
    ("Cheaper options exist.", "too_expensive"),
    ("Your pricing doesn't work for a nonprofit.", "too_expensive"),
    ("It has no Gantt charts.", "missing_features"),
    ("We need recurring invoices and it can't do them.", "missing_features"),
    ("There's no way to export to Excel.", "missing_features"),
    ("Missing an Outlook plugin.", "missing_features"),
    ("Needs a proper API before we can use it.", "missing_features"),
    ("We were waiting for two-factor login and it never came.", "missing_features"),
    ("It doesn't do purchase orders.", "missing_features"),
    ("No dark mode and no offline sync.", "missing_features"),
    ("Waiting on bulk editing for a year now.", "missing_features"),
    ("It lacks proper permissions.", "missing_features"),
    ("We don't need it anymore.", "unused"),
    ("Nobody logs in.", "unused"),
    ("We hardly ever opened it.", "unused"),
    ("It just sat there.", "unused"),
    ("Haven't touched it in months.", "unused"),
    ("We stopped logging in after the first month.", "unused"),
    ("It's been months since anyone used it.", "unused"),
    ("We only opened it twice.", "unused"),
    ("Turns out we don't really use it.", "unused"),
    ("Most of our licences are sitting idle.", "unused"),
    ("We barely used it this year.", "unused"),
    ("The team never really adopted it.", "unused"),
    ("We moved to Asana.", "switched_service"),
    ("Going with HubSpot instead.", "switched_service"),
    ("We're going to use Notion instead.", "switched_service"),
    ("Our new CRM already does this.", "switched_service"),
    ("Replaced by an in-house tool.", "switched_service"),
    ("Moving everything into Salesforce.", "switched_service"),
    ("We picked a different vendor.", "switched_service"),
    ("Trying out a competitor.", "switched_service"),
    ("Too hard to use.", "too_complex"),
    ("Couldn't get the hang of it.", "too_complex"),
    ("Far too fiddly.", "too_complex"),
    ("Our staff found it confusing.", "too_complex"),
    ("Way too many clicks to do anything.", "too_complex"),
    ("Too complicated for our volunteers.", "too_complex"),
    ("Setting it up was a nightmare.", "too_complex"),
    ("Nobody could work out how to use it.", "too_complex"),
    ("Just too much for us to learn.", "too_complex"),
    ("Way too complicated for what we need.", "too_complex"),
    ("The setup is really hard.", "too_complex"),
    ("People find it overwhelming.", "too_complex"),
    ("It keeps crashing.", "low_quality"),
    ("The app is really buggy.", "low_quality"),
    ("It's slow and unreliable.", "low_quality"),
    ("The sync never works.", "low_quality"),
    ("Constant errors.", "low_quality"),
    ("The app keeps freezing.", "low_quality"),
    ("Reports are always wrong.", "low_quality"),
    ("We lost a week of data.", "low_quality"),
    ("It's been down three times this month.", "low_quality"),
    ("Too many bugs lately.", "low_quality"),
    ("It crashes on our iPads.", "low_quality"),
    ("Search doesn't find anything.", "low_quality"),
    ("Support never got back to us.", "customer_service"),
    ("Took a week to get an answer from support.", "customer_service"),
    ("Your support team was rude.", "customer_service"),
    ("We couldn't reach anyone.", "customer_service"),
    ("Nobody from your side ever answered our emails.", "customer_service"),
    ("Support was useless.", "customer_service"),
    ("We waited ten days for a reply.", "customer_service"),
    ("Your support team never follows up.", "customer_service"),
    ("Slow support.", "customer_service"),
    ("The account manager stopped answering.", "customer_service"),
    ("Not what we were looking for.", "didnt_meet_needs"),
    ("It didn't do what we needed.", "didnt_meet_needs"),
    ("Doesn't fit how we work.", "didnt_meet_needs"),
    ("Not a good fit for us.", "didnt_meet_needs"),
    ("It's not really what we needed.", "didnt_meet_needs"),
    ("Didn't work for our workflow.", "didnt_meet_needs"),
    ("Not suitable for our business.", "didnt_meet_needs"),
    ("It never really fit our process.", "didnt_meet_needs"),
    ("Didn't meet our expectations.", "didnt_meet_needs"),
    ("Budget cuts.", "budget_cut"),
    ("Our funding was cut.", "budget_cut"),
    ("We have to reduce costs.", "budget_cut"),
    ("Spending freeze across the company.", "budget_cut"),
    ("Tightening our belts this year.", "budget_cut"),
    ("We've had to cut back on all subscriptions.", "budget_cut"),
    ("Our grant ran out.", "budget_cut"),
    ("Money is tight this year.", "budget_cut"),
    ("Budget is frozen until spring.", "budget_cut"),
    ("We're cutting costs everywhere.", "budget_cut"),
    ("We are closing the business.", "business_closed"),
    ("The company is shutting down.", "business_closed"),
    ("We went bankrupt.", "business_closed"),
    ("Ceasing trading at the end of the month.", "business_closed"),
    ("We're closing our doors for good.", "business_closed"),
    ("We're winding down the company.", "business_closed"),
    ("The business has closed.", "business_closed"),
    ("We are going out of business.", "business_closed"),
    ("Closing the shop at Christmas.", "business_closed"),
    ("We're ceasing operations.", "business_closed"),
]


@pytest.mark.parametrize(("comment", "symptom"), EVERYDAY)
def test_everyday_phrasings_of_every_symptom_are_read(comment: str, symptom: str) -> None:
    assert read_symptoms(StatedReason(source="chargebee", feedback="Others", comment=comment), RULES)[0] == symptom


def test_a_listed_word_is_never_read_inside_another_word() -> None:
    # "hanging" (something misbehaves) is inside "changing"; "we are not closing down" is denied.
    assert symptom_of("We are not closing down, we're just changing direction.") == "other"


@pytest.mark.parametrize(
    ("comment", "root_cause", "decision"),
    [
        ("Our sponsor handed in her notice and nobody took it over.", "champion_left", "pursue"),
        ("The admin who ran it is on long-term sick leave.", "champion_left", "pursue"),
        ("Our CFO froze all software spend until next year.", "executive_mandate", "pursue"),
        ("Head office is making every branch use the same booking system.", "executive_mandate", "pursue"),
        ("New company policy requires all tools to be on the approved list.", "executive_mandate", "pursue"),
        ("The warehouse staff refused to scan with it and went back to paper.", "stakeholders_not_bought_in", "pursue"),
        ("Nobody asked the nurses before it was bought.", "stakeholders_not_bought_in", "pursue"),
        ("We only had one intro call and then we were on our own.", "rocky_onboarding", "pursue"),
        ("The training session got cancelled and never rescheduled.", "rocky_onboarding", "pursue"),
        ("The calendar sync has been double-booking us for weeks.", "known_issue", "pursue"),
        ("We reported the export bug three times and it is still not fixed.", "known_issue", "pursue"),
        ("We never connected our data, so the dashboards are empty.", "poor_implementation", "pursue"),
        ("The rollout stalled and we never went live.", "poor_implementation", "pursue"),
        ("We've outgrown it, it's too basic for a team of fifty.", "wrong_fit", "pursue"),
        ("What we actually needed was a CRM, not a project tool.", "wrong_fit", "pursue"),
        ("We're closing the shop for good at Christmas.", "company_distress", "move_on"),
    ],
)
def test_everyday_words_of_every_root_cause_are_enough_to_act_on(comment: str, root_cause: str, decision: str) -> None:
    # A Chargebee "Others" with only the comment: the words alone must say the cause clearly enough to act.
    finding = diagnose_case(
        CaseFacts(stated=StatedReason(source="chargebee", feedback="Others", comment=comment), now=NOW), RULES
    )
    assert (finding.root_cause, finding.decision) == (root_cause, decision)
