"""The one vocabulary of moves: what outreach's playbook steps do and what diagnosis's rules name.

Every playbook step names its move, ``intervention.logged`` carries it, and the rules' playbook moves (and so
the diagnosis's ``avoid`` list) use the same names; a contract test holds the two sides together.
"""

from __future__ import annotations

MOVES: dict[str, str] = {
    # poor_implementation
    "implementation_review": "find the outcome they bought it for and where the setup stalled",
    "implement_for_them": "implement the missing setup for them (integrations, data, key workflows)",
    "free_support_services": "free support services while they reach their result",
    "coach_to_success": "coach the team until they reach the outcome on their own",
    # stakeholders_not_bought_in
    "map_the_users": "map who uses the product, who does not, and why",
    "onsite_with_users": "work on site with the users who never adopted it",
    "new_free_trial": "a new free trial for the teams that never started",
    # rocky_onboarding
    "plan_retraining": "agree a date to re-train the whole team",
    "retrain_team": "re-train the whole team, not only the admin",
    # executive_mandate
    "find_the_decision_maker": "find who made the decision and what they measure",
    "reach_executive": "our executive reaches theirs and listens to their KPIs",
    "kpi_business_case": "show the value delivered in the executive's own KPIs",
    # known_issue
    "commit_to_fix": "confirm the issue and commit to a fix or workaround date",
    "fix_or_workaround": "deliver the fix or workaround and verify it with the customer",
    "root_cause_review": "ask why the issue was not caught earlier and tell the team",
    # champion_left
    "find_new_champion": "find who replaced the champion and who uses it most",
    "meet_successor": "meet the new champion and show what their team gets",
    "re_introduce_value": "train the new champion so they own the tool",
    # payment_failure
    "update_payment_method": "send the billing contact a link to update the payment method",
    "billing_contact_outreach": "call the billing contact and update the payment method together",
    # wrong_fit
    "honest_fit_review": "one honest attempt to show the fit, or agree it does not fit",
    # discover, and every ending
    "discovery_call": "ask the open questions of the diagnosis",
    "discovery_follow_up": "follow up in writing with what was learned and the next step",
    "close_gracefully": "a kind goodbye: export their data, thank them, leave the door open",
}
