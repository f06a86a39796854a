"""Save offers as rules: what an offer costs, who may grant it, the budget it draws on, and which account may have
one. Plain Python without I/O: the offers file (``offer_file.py``) builds these, use cases feed them the figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

# What an offer does in the billing system (the vendor adapters carry it out).
OfferKind = Literal["keep_subscription", "discount", "free_time", "pause", "cheaper_plan"]
OFFER_KINDS: tuple[OfferKind, ...] = ("keep_subscription", "discount", "free_time", "pause", "cheaper_plan")
Period = Literal["month", "quarter", "year"]
DAYS_PER_MONTH = Decimal(30)  # free time is priced by the day at a thirtieth of the monthly revenue
ELIGIBILITY_WINDOW = timedelta(days=365)
DEFAULT_TEAM = "default"  # everyone under no lead the offers file names shares this team's budget


class OfferRuleError(ValueError):
    """An offer the rules refuse outright; ``field`` names what is wrong, for a 409 or 422 with the reason."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class NoRevenueToPrice(OfferRuleError):
    """The account's monthly revenue is unknown, and the offer's cost depends on it."""


class WrongCurrency(OfferRuleError):
    """The account pays in a currency the budget is not kept in."""


class NotEligible(OfferRuleError):
    """The account has had its offers this year, or this offer already failed for it."""


class BudgetExhausted(OfferRuleError):
    """Nothing, or too little, is left of the period's budget, and no role may go over it."""


class NoApprover(OfferRuleError):
    """The offer costs more than any role may grant."""


@dataclass(frozen=True)
class Money:
    amount_minor: int
    currency: str

    def __str__(self) -> str:
        return f"{self.amount_minor} {self.currency} (minor units)"


@dataclass(frozen=True)
class OfferTerms:
    """One offer of the catalogue: its kind and the figures its cost is worked out from."""

    name: str
    kind: OfferKind
    title: str
    months: int = 0  # discount and pause: how long; cheaper plan: the horizon its cost is counted over
    percent_off: int = 0  # discount: off the monthly revenue
    days: int = 0  # free time: how many days
    prices: tuple[tuple[str, str], ...] = ()  # cheaper plan: (billing system, its price or plan id) pairs

    def price_at(self, source: str) -> str | None:
        """The cheaper plan's price (or plan) id at this billing system, if the offers file names one."""
        return dict(self.prices).get(source)

    def cost(
        self,
        *,
        mrr_minor: int | None,
        currency: str | None,
        budget_currency: str,
        monthly_after_minor: int | None = None,
    ) -> Money:
        """What granting it gives up, in the budget's currency: keeping a subscription costs nothing; a discount
        ``months x percent x MRR``; free time ``days x MRR / 30``; a pause ``months x MRR``; a cheaper plan
        ``months x (MRR - what the cheaper plan bills a month)`` (rounded half up)."""
        check_currency(currency, budget_currency)
        if self.kind == "keep_subscription":
            return Money(0, budget_currency)
        if mrr_minor is None:
            raise NoRevenueToPrice(
                f"the account's monthly revenue is unknown, so {self.name} cannot be priced", field="mrr"
            )
        mrr = Decimal(mrr_minor)
        if self.kind == "discount":
            amount = mrr * self.months * self.percent_off / 100
        elif self.kind == "free_time":
            amount = mrr * self.days / DAYS_PER_MONTH
        elif self.kind == "cheaper_plan":
            amount = self._given_up_by_moving(mrr, monthly_after_minor)
        else:
            amount = mrr * self.months
        return Money(int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP)), budget_currency)

    def _given_up_by_moving(self, mrr: Decimal, monthly_after_minor: int | None) -> Decimal:
        if monthly_after_minor is None:
            raise NoRevenueToPrice(f"what the cheaper plan of {self.name} bills is unknown", field="offer")
        if monthly_after_minor >= mrr:
            raise OfferRuleError(
                f"{self.name} bills {monthly_after_minor} a month, not less than the {mrr} the account pays now",
                field="offer",
            )
        return (mrr - monthly_after_minor) * self.months


def check_currency(currency: str | None, budget_currency: str) -> None:
    """Raise ``WrongCurrency`` unless the account pays in the budget's currency."""
    if currency is None or currency.lower() != budget_currency:
        raise WrongCurrency(
            f"the account pays in {currency or 'an unknown currency'}, the budget is kept in {budget_currency}",
            field="currency",
        )


@dataclass(frozen=True)
class RoleLimit:
    """How much one person of a role may grant alone, per offer: an amount, a share of the account's yearly revenue,
    or both (the lower holds); neither means no limit. ``may_exceed_budget`` lets the role approve past the budget."""

    max_minor: int | None = None
    max_share_of_yearly_revenue: Decimal | None = None
    may_exceed_budget: bool = False

    def allowance(self, *, mrr_minor: int | None) -> int | None:
        """The most this role grants alone for an account of this revenue (None: no limit)."""
        caps = []
        if self.max_minor is not None:
            caps.append(self.max_minor)
        if self.max_share_of_yearly_revenue is not None:
            yearly = Decimal(mrr_minor or 0) * 12
            caps.append(int((yearly * self.max_share_of_yearly_revenue).quantize(Decimal(1), rounding=ROUND_HALF_UP)))
        return min(caps) if caps else None

    def exceeds(self, other: RoleLimit) -> bool:
        """Whether this limit grants more than ``other`` for some accounts and less for none: neither of its caps is
        below the other's (no cap is above any) and one is above. An amount alone and a share alone are not ordered:
        which grants more depends on the account's revenue."""
        pairs = (
            (self.max_minor, other.max_minor),
            (self.max_share_of_yearly_revenue, other.max_share_of_yearly_revenue),
        )
        return all(_cap_at_least(mine, theirs) for mine, theirs in pairs) and not all(
            _cap_at_least(theirs, mine) for mine, theirs in pairs
        )


def _cap_at_least(cap: int | Decimal | None, other: int | Decimal | None) -> bool:
    """Whether ``cap`` grants at least what ``other`` does (None: no cap)."""
    return cap is None or (other is not None and cap >= other)


@dataclass(frozen=True)
class BudgetState:
    """The period's budget and what is drawn on it: ``spent`` by applied offers, ``committed`` by offers waiting for
    approval or being applied."""

    total_minor: int
    spent_minor: int
    committed_minor: int
    team: str = DEFAULT_TEAM

    @property
    def remaining_minor(self) -> int:
        return self.total_minor - self.spent_minor - self.committed_minor


@dataclass(frozen=True)
class Decision:
    """``apply`` now, or ``await_approval`` with the reason and the roles that may approve it."""

    outcome: Literal["apply", "await_approval"]
    reason: str | None = None
    approver_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class AccountHistory:
    """The account's earlier offers: when each still counting was made (not rejected, not failed), and the names of
    those that failed."""

    counted_at: tuple[datetime, ...] = ()
    failed: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Team:
    """A budget's holders: the lead and everyone reporting to them, directly or through others."""

    name: str
    lead: str  # the lead's email, lower case
    budget_minor: int


@dataclass(frozen=True)
class OfferRules:
    """The offers file, read: the catalogue, the budget per period and team, the limits per role, the limit per
    account. ``budget_minor`` is the default team's (everyone under no named lead)."""

    currency: str
    period: Period
    budget_minor: int
    max_per_account_per_year: int
    limits: dict[str, RoleLimit]
    offers: dict[str, OfferTerms]
    teams: dict[str, Team] = field(default_factory=dict)

    def team_of(self, chain: list[str]) -> str:
        """The team of the person whose email comes first in ``chain``, followed by their managers' nearest first:
        the nearest of them who leads a team, else the default team."""
        leads = {team.lead: team.name for team in self.teams.values()}
        return next((leads[email] for email in chain if email in leads), DEFAULT_TEAM)

    def budget_of(self, team: str) -> int:
        """A team's budget per period (a team no longer in the file gets the default's)."""
        found = self.teams.get(team)
        return self.budget_minor if found is None else found.budget_minor

    def team_names(self) -> list[str]:
        """Every team with a budget: the named ones, then the default."""
        return [*sorted(self.teams), DEFAULT_TEAM]

    def check_eligible(self, terms: OfferTerms, history: AccountHistory, *, now: datetime) -> None:
        """Raise ``NotEligible`` when the account had its offers in the last 365 days, or this one failed for it."""
        if terms.name in history.failed:
            raise NotEligible(f"{terms.name} already failed for this account; it is not proposed again", field="offer")
        recent = [made for made in history.counted_at if made > now - ELIGIBILITY_WINDOW]
        if len(recent) >= self.max_per_account_per_year:
            raise NotEligible(
                f"the account had {len(recent)} offer(s) in the last 365 days; at most "
                f"{self.max_per_account_per_year} a year",
                field="account",
            )

    def decide(self, *, cost: Money, role: str | None, mrr_minor: int | None, budget: BudgetState) -> Decision:
        """Apply at once when the cost is within the role's limit and the remaining budget; otherwise wait for a role
        that may approve it. Raise ``BudgetExhausted`` when the budget cannot cover it and no role may exceed it, and
        ``NoApprover`` when no role may grant that much."""
        left = max(budget.remaining_minor, 0)
        over_budget = cost.amount_minor > budget.remaining_minor
        if over_budget and not any(limit.may_exceed_budget for limit in self.limits.values()):
            raise BudgetExhausted(
                f"team {budget.team}'s budget for the {self.period} has {left} {self.currency} left (of {budget.total_minor}: "
                f"{budget.spent_minor} spent, {budget.committed_minor} committed); this offer costs {cost.amount_minor}",
                field="budget",
            )
        allowance = self.allowance(role, mrr_minor=mrr_minor)
        within_limit = allowance is None or cost.amount_minor <= allowance
        if within_limit and not over_budget:
            return Decision("apply")
        approvers = tuple(
            name for name in self.limits if self.may_approve(name, cost=cost, mrr_minor=mrr_minor, budget=budget)
        )
        if not approvers:
            raise NoApprover(f"costs {cost.amount_minor} {self.currency}: no role may grant that much", field="offer")
        if over_budget:
            reason = (
                f"costs {cost.amount_minor} {self.currency}, over the {left} left in team {budget.team}'s budget "
                f"for the {self.period}"
            )
        else:
            reason = (
                f"costs {cost.amount_minor} {self.currency}, over the {allowance} a "
                f"{role or 'person without a role'} may grant alone"
            )
        return Decision("await_approval", reason, approvers)

    def allowance(self, role: str | None, *, mrr_minor: int | None) -> int | None:
        """The most ``role`` grants alone (0 for a role the file gives no limit: it may grant only free offers)."""
        limit = self.limits.get(role or "")
        return 0 if limit is None else limit.allowance(mrr_minor=mrr_minor)

    def approves(self, role: str | None) -> bool:
        """Whether the role decides on offers at all (has the approvals page), as the file's limits say: it may exceed
        the budget, or its limit is above another role's (``RoleLimit.exceeds``), so it can grant what that role
        cannot. With the shipped file CSMs propose and the roles above them approve."""
        limit = self.limits.get(role or "")
        if limit is None:
            return False
        return limit.may_exceed_budget or any(limit.exceeds(other) for other in self.limits.values())

    def may_approve(self, role: str | None, *, cost: Money, mrr_minor: int | None, budget: BudgetState) -> bool:
        """Whether ``role`` may approve this offer: it approves at all, and its limit covers the cost within the
        budget left without it (or it may exceed the budget)."""
        limit = self.limits.get(role or "")
        if limit is None or not self.approves(role):
            return False
        if cost.amount_minor > budget.remaining_minor and not limit.may_exceed_budget:
            return False
        allowance = limit.allowance(mrr_minor=mrr_minor)
        return allowance is None or cost.amount_minor <= allowance


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """The budget period holding ``now``: calendar months, quarters or years in UTC, start inclusive, end exclusive."""
    now = now.astimezone(UTC)
    if period == "year":
        return datetime(now.year, 1, 1, tzinfo=UTC), datetime(now.year + 1, 1, 1, tzinfo=UTC)
    span = 3 if period == "quarter" else 1
    first_month = (now.month - 1) // span * span + 1
    start = datetime(now.year, first_month, 1, tzinfo=UTC)
    year, month = divmod(first_month - 1 + span, 12)
    return start, datetime(now.year + year, month + 1, 1, tzinfo=UTC)
