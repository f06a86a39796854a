"""Save offers as rules: cost, limits per role, the budget, eligibility, and the offers file that holds them."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from services.outreach.models import PERSON_ROLES
from services.outreach.offer_file import OFFERS_FILE, OfferFileError, load_offer_rules
from services.outreach.offer_rules import (
    AccountHistory,
    BudgetExhausted,
    BudgetState,
    Money,
    NoApprover,
    NoRevenueToPrice,
    NotEligible,
    OfferRuleError,
    OfferRules,
    OfferTerms,
    RoleLimit,
    WrongCurrency,
    period_bounds,
)

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DISCOUNT = OfferTerms(
    name="twenty_off_3_months", kind="discount", title="20% off for 3 months", months=3, percent_off=20
)
KEEP = OfferTerms(name="keep_subscription", kind="keep_subscription", title="Keep the subscription")


def rules(**overrides: object) -> OfferRules:
    settings: dict[str, object] = {
        "currency": "usd",
        "period": "quarter",
        "budget_minor": 1_000_000,
        "max_per_account_per_year": 2,
        "limits": {
            "csm": RoleLimit(max_minor=25_000, max_share_of_yearly_revenue=Decimal("0.05")),
            "cs_manager": RoleLimit(max_minor=100_000),
            "vp_customer_success": RoleLimit(may_exceed_budget=True),
        },
        "offers": {DISCOUNT.name: DISCOUNT, KEEP.name: KEEP},
    }
    return OfferRules(**{**settings, **overrides})  # type: ignore[arg-type]


def fresh_budget(total: int = 1_000_000) -> BudgetState:
    return BudgetState(total_minor=total, spent_minor=0, committed_minor=0)


# --- cost ---------------------------------------------------------------------------------------------------------


def test_a_discount_costs_months_times_percent_times_the_monthly_revenue() -> None:
    assert DISCOUNT.cost(mrr_minor=49_900, currency="usd", budget_currency="usd") == Money(29_940, "usd")


def test_free_time_costs_a_thirtieth_of_the_monthly_revenue_a_day_and_a_pause_the_revenue_a_month() -> None:
    free = OfferTerms(name="free_two_weeks", kind="free_time", title="Two free weeks", days=14)
    pause = OfferTerms(name="pause_two", kind="pause", title="Pause two months", months=2)
    assert free.cost(mrr_minor=30_002, currency="USD", budget_currency="usd") == Money(14_001, "usd")  # 14000.93
    assert pause.cost(mrr_minor=30_000, currency="usd", budget_currency="usd") == Money(60_000, "usd")


def test_keeping_the_subscription_costs_nothing_even_when_the_revenue_is_unknown() -> None:
    assert KEEP.cost(mrr_minor=None, currency="eur", budget_currency="eur") == Money(0, "eur")


def test_an_account_paying_in_another_currency_than_the_budget_is_refused() -> None:
    with pytest.raises(WrongCurrency, match="pays in eur, the budget is kept in usd") as error:
        KEEP.cost(mrr_minor=10_000, currency="eur", budget_currency="usd")
    assert error.value.field == "currency"


def test_an_offer_priced_on_revenue_needs_the_revenue() -> None:
    with pytest.raises(NoRevenueToPrice, match="monthly revenue is unknown") as error:
        DISCOUNT.cost(mrr_minor=None, currency="usd", budget_currency="usd")
    assert error.value.field == "mrr"


CHEAPER = OfferTerms(
    name="basic_for_a_year", kind="cheaper_plan", title="Basic plan", months=12, prices=(("stripe", "basic"),)
)


def test_a_cheaper_plan_costs_the_revenue_given_up_a_month_over_its_horizon() -> None:
    cost = CHEAPER.cost(mrr_minor=14_700, currency="usd", budget_currency="usd", monthly_after_minor=9_800)
    assert cost == Money(58_800, "usd")  # (14,700 - 9,800) x 12


def test_a_plan_that_is_not_cheaper_is_refused_with_both_figures() -> None:
    with pytest.raises(OfferRuleError, match="bills 14700 a month, not less than the 14700") as error:
        CHEAPER.cost(mrr_minor=14_700, currency="usd", budget_currency="usd", monthly_after_minor=14_700)
    assert error.value.field == "offer"


# --- limits per role --------------------------------------------------------------------------------------------


def test_the_lower_of_an_amount_and_a_share_of_yearly_revenue_limits_a_role() -> None:
    csm = RoleLimit(max_minor=25_000, max_share_of_yearly_revenue=Decimal("0.05"))
    assert csm.allowance(mrr_minor=20_000) == 12_000  # 5% of 240,000
    assert csm.allowance(mrr_minor=1_000_000) == 25_000
    assert RoleLimit().allowance(mrr_minor=1) is None


def test_within_the_role_limit_and_the_budget_an_offer_applies_at_once() -> None:
    decision = rules().decide(cost=Money(20_000, "usd"), role="csm", mrr_minor=1_000_000, budget=fresh_budget())
    assert decision.outcome == "apply" and decision.reason is None


def test_over_the_csm_limit_it_waits_for_a_role_that_may_grant_it() -> None:
    decision = rules().decide(cost=Money(29_940, "usd"), role="csm", mrr_minor=49_900, budget=fresh_budget())
    assert decision.outcome == "await_approval"
    assert decision.reason == "costs 29940 usd, over the 25000 a csm may grant alone"
    assert decision.approver_roles == ("cs_manager", "vp_customer_success")
    assert rules().may_approve("cs_manager", cost=Money(29_940, "usd"), mrr_minor=49_900, budget=fresh_budget())
    assert not rules().may_approve("csm", cost=Money(29_940, "usd"), mrr_minor=49_900, budget=fresh_budget())


def test_a_role_the_file_gives_no_limit_grants_only_free_offers_and_approves_nothing() -> None:
    free = rules().decide(cost=Money(0, "usd"), role="admin", mrr_minor=10_000, budget=fresh_budget())
    paid = rules().decide(cost=Money(1, "usd"), role="admin", mrr_minor=10_000, budget=fresh_budget())
    assert free.outcome == "apply" and paid.outcome == "await_approval"
    assert not rules().may_approve("admin", cost=Money(1, "usd"), mrr_minor=10_000, budget=fresh_budget())


def test_an_offer_over_every_role_limit_has_no_approver() -> None:
    capped = rules(limits={"csm": RoleLimit(max_minor=10), "cs_manager": RoleLimit(max_minor=100)})
    with pytest.raises(NoApprover, match="no role may grant that much"):
        capped.decide(cost=Money(101, "usd"), role="csm", mrr_minor=10_000, budget=fresh_budget())


# --- budget -----------------------------------------------------------------------------------------------------


def test_spent_and_committed_both_draw_on_the_budget() -> None:
    budget = BudgetState(total_minor=100_000, spent_minor=60_000, committed_minor=30_000)
    assert budget.remaining_minor == 10_000
    decision = rules().decide(cost=Money(10_001, "usd"), role="cs_manager", mrr_minor=500_000, budget=budget)
    assert decision.outcome == "await_approval"
    assert decision.reason == "costs 10001 usd, over the 10000 left in team default's budget for the quarter"
    assert decision.approver_roles == ("vp_customer_success",)
    assert not rules().may_approve("cs_manager", cost=Money(10_001, "usd"), mrr_minor=500_000, budget=budget)


def test_an_exhausted_budget_refuses_with_the_figures_when_no_role_may_exceed_it() -> None:
    strict = rules(limits={"csm": RoleLimit(max_minor=25_000), "cs_manager": RoleLimit()})
    budget = BudgetState(total_minor=100_000, spent_minor=95_000, committed_minor=5_000)
    with pytest.raises(BudgetExhausted) as error:
        strict.decide(cost=Money(1, "usd"), role="cs_manager", mrr_minor=10_000, budget=budget)
    assert str(error.value) == (
        "team default's budget for the quarter has 0 usd left (of 100000: 95000 spent, 5000 committed); this offer costs 1"
    )
    assert error.value.field == "budget"
    assert strict.decide(cost=Money(0, "usd"), role="csm", mrr_minor=10_000, budget=budget).outcome == "apply"


@pytest.mark.parametrize(
    "period, now, start, end",
    [
        ("month", datetime(2026, 12, 31, 23, 59, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("quarter", datetime(2026, 11, 15, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
        ("quarter", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)),
        ("year", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_budget_periods_are_calendar_periods_in_utc(period: str, now: datetime, start: datetime, end: datetime) -> None:
    assert period_bounds(period, now) == (start, end)  # type: ignore[arg-type]


# --- eligibility ------------------------------------------------------------------------------------------------


def test_at_most_n_offers_per_account_in_any_365_days() -> None:
    two_this_year = AccountHistory(counted_at=(NOW - timedelta(days=30), NOW - timedelta(days=364)))
    with pytest.raises(NotEligible, match="had 2 offer\\(s\\) in the last 365 days; at most 2 a year"):
        rules().check_eligible(KEEP, two_this_year, now=NOW)
    one_expired = AccountHistory(counted_at=(NOW - timedelta(days=30), NOW - timedelta(days=366)))
    rules().check_eligible(KEEP, one_expired, now=NOW)


def test_an_offer_that_already_failed_for_the_account_is_not_proposed_again() -> None:
    failed = AccountHistory(failed=frozenset({DISCOUNT.name}))
    with pytest.raises(NotEligible, match="twenty_off_3_months already failed for this account"):
        rules().check_eligible(DISCOUNT, failed, now=NOW)
    rules().check_eligible(KEEP, failed, now=NOW)


# --- the offers file --------------------------------------------------------------------------------------------


def test_the_shipped_offers_file_is_valid_and_offers_keeping_the_subscription() -> None:
    shipped = load_offer_rules()
    assert shipped.offers["keep_subscription"].kind == "keep_subscription"
    assert shipped.limits["csm"].allowance(mrr_minor=10_000) == 6_000
    assert shipped.limits["vp_customer_success"].may_exceed_budget


GOOD = (
    "currency: usd\nperiod: quarter\nbudget_minor: 1000\nmax_per_account_per_year: 2\n"
    "limits:\n  csm: {max_minor: 100}\n"
    "offers:\n  keep: {kind: keep_subscription, title: Keep}\n"
)


def test_a_discount_in_the_file_is_priced_from_its_months_and_percent(tmp_path: Path) -> None:
    path = tmp_path / "offers.yaml"
    path.write_text(GOOD + "  twenty_off: {kind: discount, title: Twenty percent off, months: 3, percent_off: 20}\n")
    assert load_offer_rules(path).offers["twenty_off"].cost(
        mrr_minor=10_000, currency="usd", budget_currency="usd"
    ) == Money(6_000, "usd")


def test_a_cheaper_plan_in_the_file_names_its_plan_per_billing_system(tmp_path: Path) -> None:
    path = tmp_path / "offers.yaml"
    path.write_text(
        GOOD + "  basic: {kind: cheaper_plan, title: Basic, months: 6, prices: {chargebee: basic-USD-monthly}}\n"
    )
    basic = load_offer_rules(path).offers["basic"]
    assert (basic.price_at("chargebee"), basic.price_at("stripe"), basic.months) == ("basic-USD-monthly", None, 6)


def test_the_roles_that_approve_follow_the_limits_in_the_file(tmp_path: Path) -> None:
    def approvers(loaded: OfferRules) -> list[str]:
        return [role for role in PERSON_ROLES if loaded.approves(role)]

    # The shipped file: CSMs propose; the manager (a higher amount, no share cap) and the VP (past the budget) approve.
    assert approvers(load_offer_rules()) == ["cs_manager", "vp_customer_success"]

    # Another organisation trusts its CSMs more than its managers, and lets admins spend past the budget.
    path = tmp_path / "offers.yaml"
    path.write_text(
        GOOD.replace(
            "  csm: {max_minor: 100}\n",
            "  csm: {max_minor: 100000}\n  cs_manager: {max_minor: 20000}\n  admin: {may_exceed_budget: true}\n",
        )
    )
    inverted = load_offer_rules(path)
    assert approvers(inverted) == ["csm", "admin"]
    waiting = inverted.decide(cost=Money(30_000, "usd"), role="cs_manager", mrr_minor=100_000, budget=fresh_budget())
    assert (waiting.outcome, waiting.approver_roles) == ("await_approval", ("csm", "admin"))
    assert not inverted.may_approve("cs_manager", cost=Money(10, "usd"), mrr_minor=100_000, budget=fresh_budget())

    # An amount alone and a share alone are not ordered (which grants more depends on the account): nobody approves.
    path.write_text(
        GOOD.replace(
            "  csm: {max_minor: 100}\n", "  csm: {max_minor: 500}\n  cs_manager: {max_share_of_yearly_revenue: 0.1}\n"
        )
    )
    unordered = load_offer_rules(path)
    assert approvers(unordered) == []
    with pytest.raises(NoApprover):
        unordered.decide(cost=Money(600, "usd"), role="csm", mrr_minor=100_000, budget=fresh_budget())


@pytest.mark.parametrize(
    "text, complaint",
    [
        (GOOD.replace("usd", "US$"), "currency: String should match pattern"),
        (GOOD.replace("quarter", "fortnight"), "period: Input should be 'month', 'quarter' or 'year'"),
        (GOOD.replace("budget_minor: 1000", "budget_minor: -5"), "budget_minor: Input should be greater than or equal to 0"),
        (GOOD.replace("max_per_account_per_year: 2", "max_per_account_per_year: 0"), "max_per_account_per_year"),
        (GOOD.replace("csm:", "intern:"), "limits.intern.[key]"),
        (GOOD.replace("max_minor: 100", "max_share_of_yearly_revenue: 1.5"), "limits.csm.max_share_of_yearly_revenue"),
        (GOOD.replace("kind: keep_subscription", "kind: free_lunch"), "offers.keep.kind"),
        (GOOD + "  twenty_off: {kind: discount, title: Twenty percent off, months: 3}\n", "percent_off: a discount offer needs it above 0"),
        (GOOD.replace("title: Keep", "title: Keep, days: 3"), "days: a keep_subscription offer takes no days"),
        (GOOD.replace("keep:", "Keep Me:"), "offers.Keep Me: a name is 1 to 64"),
        (GOOD + "  basic: {kind: cheaper_plan, title: Basic, months: 12}\n", "prices: a cheaper_plan offer needs the plan's id"),
        (GOOD + "  basic: {kind: cheaper_plan, title: Basic, prices: {stripe: basic}}\n", "months: a cheaper_plan offer needs it above 0"),
        (GOOD + "  basic: {kind: cheaper_plan, title: B, months: 1, prices: {paddle: x}}\n", "offers.basic.prices.paddle.[key]"),
        (GOOD.replace("title: Keep", "title: Keep, prices: {stripe: basic}"), "prices: a keep_subscription offer takes no prices"),
        (GOOD.replace("budget_minor", "budget"), "budget_minor: Field required"),
        (GOOD + "teams: []\n", "teams: Input should be a valid dictionary"),
        (GOOD + "teams:\n  default: {lead: a@example.com, budget_minor: 5}\n", "teams.default: the default team's budget is budget_minor"),
        (GOOD + "teams:\n  emea: {lead: maria, budget_minor: 5}\n", "teams.emea.lead: String should match pattern"),
        (GOOD + "teams:\n  emea: {lead: a@example.com}\n", "teams.emea.budget_minor: Field required"),
        (GOOD + "teams:\n  emea: {lead: a@example.com, budget_minor: 5}\n  apac: {lead: A@example.com, budget_minor: 5}\n", "teams.apac.lead: a@example.com already leads team emea"),
        (GOOD + "teams:\n  EMEA: {lead: a@example.com, budget_minor: 5}\n", "teams.EMEA: a name is 1 to 64"),
        ("offers: [unclosed\n", "cannot be read"),
        ("- a list\n", "expected a mapping"),
    ],
)  # fmt: skip
def test_a_bad_offers_file_is_refused_in_one_line_naming_file_and_field(
    tmp_path: Path, text: str, complaint: str
) -> None:
    path = tmp_path / "offers.yaml"
    path.write_text(text)
    with pytest.raises(OfferFileError) as error:
        load_offer_rules(path)
    message = str(error.value)
    assert message.startswith(f"offers file {path}: ") and complaint in message and "\n" not in message, message


def test_a_missing_offers_file_is_refused_naming_it(tmp_path: Path) -> None:
    shutil.copy(OFFERS_FILE, tmp_path / "elsewhere.yaml")
    with pytest.raises(OfferFileError, match=r"offers file .*missing\.yaml: cannot be read"):
        load_offer_rules(tmp_path / "missing.yaml")


def test_an_offer_draws_on_the_nearest_lead_s_team_else_the_default(tmp_path: Path) -> None:
    path = tmp_path / "offers.yaml"
    path.write_text(
        GOOD + "teams:\n  emea: {lead: Maria@example.com, budget_minor: 700}\n"
        "  enterprise: {lead: vera@example.com, budget_minor: 900}\n"
    )
    loaded = load_offer_rules(path)
    # A CSM reporting to Maria, who reports to Vera: Maria's team, the nearest; Maria herself leads it too.
    assert loaded.team_of(["carla@example.com", "maria@example.com", "vera@example.com"]) == "emea"
    assert loaded.team_of(["maria@example.com", "vera@example.com"]) == "emea"
    assert loaded.team_of(["vera@example.com"]) == "enterprise"
    assert loaded.team_of(["dora@example.com", "olga@example.com"]) == "default"
    assert [(name, loaded.budget_of(name)) for name in loaded.team_names()] == [
        ("emea", 700),
        ("enterprise", 900),
        ("default", 1000),
    ]
    assert loaded.budget_of("dissolved") == 1000  # a team no longer in the file: its offers draw on the default's


def test_a_team_s_exhausted_budget_is_named_in_the_refusal() -> None:
    budget = BudgetState(total_minor=10_000, spent_minor=9_000, committed_minor=0, team="emea")
    strict = rules(limits={"csm": RoleLimit(max_minor=25_000)})
    with pytest.raises(BudgetExhausted, match=r"^team emea's budget for the quarter has 1000 usd left \(of 10000"):
        strict.decide(cost=Money(2_000, "usd"), role="csm", mrr_minor=100_000, budget=budget)
