"""Use cases of save offers: propose (preview and cost), apply within the caller's limit and the budget or wait for
approval, approve, reject. Never commits: the HTTP request owns the transaction."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.clock import Clock
from services.outreach.history import record
from services.outreach.models import Case, Offer, Person
from services.outreach.offer_actions.base import (
    Applied,
    OfferActionError,
    OfferActions,
    idempotency_key,
    undo_key,
    undo_params,
)
from services.outreach.offer_rules import (
    ELIGIBILITY_WINDOW,
    AccountHistory,
    BudgetState,
    Money,
    OfferRuleError,
    OfferRules,
    OfferTerms,
    check_currency,
    period_bounds,
)
from services.outreach.people import find_by_email, managers_above
from shared.billing.base import BillingError, BillingUnavailable
from shared.ids import new_id


class OfferError(Exception):
    """A refused offer request; the HTTP edge maps each kind to its status code."""


class OfferNotFound(OfferError):
    """No such offer, or no such case (404)."""


class OfferConflict(OfferError):
    """The case, the offer or the subscription is not in a state that allows it (409)."""


class NotAllowed(OfferError):
    """The person's role may not do this (403)."""


class OfferInvalid(OfferError):
    """A field names something that does not exist (422); ``field`` says which."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class BillingFailed(OfferError):
    """The billing system refused or failed a read needed for the preview (502, with its message)."""


@dataclass(frozen=True)
class OfferContext:
    """What offers need besides the database: the offers file, the vendor adapters by source, the clock."""

    rules: OfferRules
    actions: Mapping[str, OfferActions]
    clock: Clock


async def _acting_person(session: AsyncSession, email: str) -> Person:
    person = await find_by_email(session, email)
    if person is None or not person.active:
        raise OfferInvalid(f"no active person has the email {email!r}", field="by")
    return person


async def _history(
    session: AsyncSession, account_id: str, context: OfferContext, offer_id: str | None
) -> AccountHistory:
    since = context.clock.now() - ELIGIBILITY_WINDOW
    counted, failed = await repository.account_offers(session, account_id, since=since, leaving_out=offer_id)
    return AccountHistory(counted_at=tuple(counted), failed=frozenset(failed))


async def _budget(session: AsyncSession, context: OfferContext, *, team: str, leaving_out: str | None) -> BudgetState:
    start, end = period_bounds(context.rules.period, context.clock.now())
    drawn = await repository.offer_budget_drawn(
        session, period_start=start, period_end=end, team=team, leaving_out=leaving_out
    )
    spent, committed = drawn.get(team, (0, 0))
    return BudgetState(
        total_minor=context.rules.budget_of(team), spent_minor=spent, committed_minor=committed, team=team
    )


async def _team_of(session: AsyncSession, person: Person, context: OfferContext) -> str:
    """The team whose budget the person's offers draw on: their nearest lead named in the offers file."""
    chain = [person.email, *(manager.email for manager in await managers_above(session, person))]
    return context.rules.team_of(chain)


def _subscription_of(case: Case, context: OfferContext) -> tuple[OfferActions, str]:
    source, _, subscription_id = case.cancellation_id.partition(":")
    actions = context.actions.get(source)
    if actions is None or not subscription_id:
        setting = (
            "BRINK_CHARGEBEE_SITE and BRINK_CHARGEBEE_API_KEY" if source == "chargebee" else "BRINK_STRIPE_API_KEY"
        )
        raise OfferConflict(f"offers on {source} subscriptions need a billing connection ({setting})")
    return actions, subscription_id


async def _open_case(session: AsyncSession, case_id: str) -> Case:
    case = await repository.case_with_history(session, case_id, lock=True)
    if case is None:
        raise OfferNotFound(f"no case {case_id!r}")
    if case.status != "open":
        raise OfferConflict(f"case {case_id} is closed ({case.status}); offers are made on open cases")
    return case


async def propose(session: AsyncSession, case_id: str, *, offer: str, by: str, context: OfferContext) -> Offer:
    """Price an offer for the case and preview it on the billing system; nothing is changed there yet."""
    case = await _open_case(session, case_id)
    person = await _acting_person(session, by)
    terms = context.rules.offers.get(offer)
    if terms is None:
        raise OfferInvalid(f"no offer {offer!r} in the offers file ({', '.join(context.rules.offers)})", field="offer")
    with _refused_by_rules():
        check_currency(case.currency, context.rules.currency)
        context.rules.check_eligible(
            terms, await _history(session, case.account_id, context, None), now=context.clock.now()
        )
    actions, subscription_id = _subscription_of(case, context)
    offer_id = new_id()
    try:
        preview = await actions.preview(
            subscription_id, terms, reference=idempotency_key(offer_id), now=context.clock.now()
        )
    except OfferActionError as error:
        raise OfferConflict(str(error)) from None
    except BillingError as error:
        raise BillingFailed(str(error)) from None
    with _refused_by_rules():
        cost = terms.cost(
            mrr_minor=case.mrr_minor,
            currency=case.currency,
            budget_currency=context.rules.currency,
            monthly_after_minor=preview.monthly_after_minor,
        )
    now = context.clock.now()
    proposed = Offer(
        id=offer_id,
        case_id=case.id,
        account_id=case.account_id,
        source=actions.source,
        subscription_id=subscription_id,
        offer=terms.name,
        kind=terms.kind,
        status="proposed",
        cost_minor=cost.amount_minor,
        currency=cost.currency,
        preview=preview.changes,
        change=preview.params,
        proposed_by=person.email,
        proposed_at=now,
        team=await _team_of(session, person, context),
    )
    session.add(proposed)
    record(session, case, "offer_proposed", at=now, actor=person.email, offer_id=proposed.id, offer=terms.name,
           cost_minor=cost.amount_minor, currency=cost.currency, preview=preview.changes)  # fmt: skip
    return proposed


@contextmanager
def _refused_by_rules() -> Iterator[None]:
    """The rules' refusals as the API's: the account or offer not eligible is a 409, a bad figure a 422."""
    try:
        yield
    except OfferRuleError as error:
        raise (
            OfferConflict(str(error))
            if error.field in ("account", "offer")
            else OfferInvalid(str(error), field=error.field)
        ) from None


async def _locked(session: AsyncSession, offer_id: str) -> Offer:
    found = await repository.locked_offer(session, offer_id)
    if found is None:
        raise OfferNotFound(f"no offer {offer_id!r}")
    return found


async def apply(session: AsyncSession, offer_id: str, *, by: str, context: OfferContext) -> Offer:
    """Apply a proposed (or failed, to retry) offer when the caller's limit and the budget allow, else leave it
    waiting for approval with the reason. An offer already applied or waiting is returned as it is."""
    offer = await _locked(session, offer_id)
    if offer.status in ("applied", "awaiting_approval"):
        return offer
    if offer.status == "rejected":
        raise OfferConflict(f"offer {offer_id} was rejected by {offer.decided_by}: {offer.decision_reason}")
    case = await _open_case(session, offer.case_id)
    person = await _acting_person(session, by)
    terms = _terms_of(offer, context)
    await repository.lock_offer_budget(session)
    try:
        context.rules.check_eligible(
            terms, await _history(session, offer.account_id, context, offer.id), now=context.clock.now()
        )
        decision = context.rules.decide(
            cost=Money(offer.cost_minor, offer.currency),
            role=person.role,
            mrr_minor=case.mrr_minor,
            budget=await _budget(session, context, team=offer.team, leaving_out=offer.id),
        )
    except OfferRuleError as error:
        raise OfferConflict(str(error)) from None
    now = context.clock.now()
    if decision.outcome == "await_approval":
        offer.status = "awaiting_approval"
        offer.approval_reason = decision.reason
        offer.approver_roles = ",".join(decision.approver_roles)
        record(session, case, "offer_awaiting_approval", at=now, actor=person.email, offer_id=offer.id,
               reason=decision.reason, approver_roles=list(decision.approver_roles))  # fmt: skip
        return offer
    await _carry_out(session, offer, case, terms, by=person.email, context=context)
    return offer


async def approve(session: AsyncSession, offer_id: str, *, by: str, reason: str | None, context: OfferContext) -> Offer:
    """Approve an offer waiting for it, and apply it; of two approvals at once, one wins and the other is refused."""
    offer = await _waiting(session, offer_id)
    case = await _open_case(session, offer.case_id)
    person = await _acting_person(session, by)
    await repository.lock_offer_budget(session)
    budget = await _budget(session, context, team=offer.team, leaving_out=offer.id)
    cost = Money(offer.cost_minor, offer.currency)
    if not context.rules.may_approve(person.role, cost=cost, mrr_minor=case.mrr_minor, budget=budget):
        raise NotAllowed(
            f"a {person.role} may not approve an offer of {offer.cost_minor} {offer.currency} with "
            f"{max(budget.remaining_minor, 0)} left in the budget (roles that may: {offer.approver_roles})"
        )
    now = context.clock.now()
    offer.decided_by, offer.decided_at, offer.decision_reason = person.email, now, reason
    record(session, case, "offer_approved", at=now, actor=person.email, offer_id=offer.id, reason=reason)
    await _carry_out(session, offer, case, _terms_of(offer, context), by=person.email, context=context)
    return offer


async def reject(session: AsyncSession, offer_id: str, *, by: str, reason: str, context: OfferContext) -> Offer:
    """Refuse an offer waiting for approval, with the reason; it is never applied."""
    offer = await _waiting(session, offer_id)
    case = await repository.case_with_history(session, offer.case_id)
    person = await _acting_person(session, by)
    if not context.rules.may_approve(
        person.role,
        cost=Money(offer.cost_minor, offer.currency),
        mrr_minor=case.mrr_minor if case else None,
        budget=await _budget(session, context, team=offer.team, leaving_out=offer.id),
    ):
        raise NotAllowed(f"a {person.role} may not decide on this offer (roles that may: {offer.approver_roles})")
    now = context.clock.now()
    offer.status, offer.decided_by, offer.decided_at, offer.decision_reason = "rejected", person.email, now, reason
    if case is not None:
        record(session, case, "offer_rejected", at=now, actor=person.email, offer_id=offer.id, reason=reason)
    return offer


async def _waiting(session: AsyncSession, offer_id: str) -> Offer:
    offer = await _locked(session, offer_id)
    if offer.status != "awaiting_approval":
        decided = f" by {offer.decided_by}" if offer.decided_by else ""
        raise OfferConflict(f"offer {offer_id} is {offer.status}{decided}, not awaiting approval")
    return offer


def _terms_of(offer: Offer, context: OfferContext) -> OfferTerms:
    terms = context.rules.offers.get(offer.offer)
    if terms is None:
        raise OfferConflict(f"offer {offer.offer!r} is no longer in the offers file")
    return terms


async def _sent(
    actions: OfferActions, subscription_id: str, change: dict[str, Any], *, key: str
) -> tuple[Applied, bool]:
    """Send a change and read it back: (where it applied, whether it holds). A refusal of a change the subscription
    already shows counts as sent: a retry after the vendor forgot the key, or after the first answer was lost."""
    try:
        applied = await actions.apply(subscription_id, change, idempotency_key=key)
    except BillingError as error:
        if isinstance(error, BillingUnavailable) or not await actions.verify(subscription_id, change):
            raise
        return Applied(subscription_id), True
    return applied, await actions.verify(applied.subscription_id, change)


async def _carry_out(
    session: AsyncSession, offer: Offer, case: Case, terms: OfferTerms, *, by: str, context: OfferContext
) -> None:
    """Apply on the billing system with a key derived from the offer's id, then read it back; a refusal leaves the
    offer ``failed`` with the vendor's message (retrying is safe: the key is the same)."""
    actions = context.actions.get(offer.source)
    if actions is None:
        raise OfferConflict(f"offers on {offer.source} subscriptions need a billing connection")
    now = context.clock.now()
    try:
        applied, held = await _sent(actions, offer.subscription_id, offer.change, key=idempotency_key(offer.id))
    except (BillingError, OfferActionError) as error:
        offer.status, offer.failure = "failed", str(error)
        record(session, case, "offer_failed", at=now, actor=by, offer_id=offer.id, failure=str(error))
        return
    if not held:
        offer.status, offer.failure = (
            "failed",
            f"{offer.source} accepted the change but the read-back shows it did not hold",
        )
        record(session, case, "offer_failed", at=now, actor=by, offer_id=offer.id, failure=offer.failure)
        return
    offer.status, offer.applied_by, offer.applied_at, offer.verified_at, offer.failure = "applied", by, now, now, None
    if applied.subscription_id != offer.subscription_id:
        offer.new_subscription_id = applied.subscription_id
    record(session, case, "offer_applied", at=now, actor=by, offer_id=offer.id, offer=offer.offer,
           cost_minor=offer.cost_minor, currency=offer.currency,
           new_subscription_id=offer.new_subscription_id)  # fmt: skip


async def undo(session: AsyncSession, offer_id: str, *, by: str, reason: str | None, context: OfferContext) -> Offer:
    """Take an applied offer back where its billing system allows (the discount removed, the pause resumed, the
    cancellation put back, the plan moved back), read back; an undone offer is returned as it is. A refusal or an
    outage leaves it applied with the vendor's message in ``failure`` and on the timeline: undoing again is safe.
    Its cost stays spent: part of what it gave may have been used."""
    offer = await _locked(session, offer_id)
    if offer.status == "undone":
        return offer
    if offer.status != "applied":
        raise OfferConflict(f"offer {offer_id} is {offer.status}; only an applied offer can be undone")
    person = await _acting_person(session, by)
    case = await repository.case_with_history(session, offer.case_id)
    actions = context.actions.get(offer.source)
    if actions is None:
        raise OfferConflict(f"offers on {offer.source} subscriptions need a billing connection")
    now = context.clock.now()
    try:
        change = undo_params(offer.change, now=now)
    except OfferActionError as error:
        raise OfferConflict(f"offer {offer_id} cannot be undone: {error}") from None
    subscription_id = offer.new_subscription_id or offer.subscription_id
    try:
        ended = await actions.ended(subscription_id)
        if ended is not None:
            raise OfferConflict(f"subscription {subscription_id} has already ended ({ended}): there is nothing to undo")
        _, held = await _sent(actions, subscription_id, change, key=undo_key(offer.id))
    except (BillingError, OfferActionError) as error:
        held, offer.failure = False, f"undo: {error}"
    else:
        if not held:
            offer.failure = f"undo: {offer.source} accepted it but the read-back shows it did not hold"
    if not held:
        if case is not None:
            record(session, case, "offer_undo_failed", at=now, actor=person.email, offer_id=offer.id,
                   failure=offer.failure)  # fmt: skip
        return offer
    offer.status, offer.undone_by, offer.undone_at, offer.failure = "undone", person.email, now, None
    if case is not None:
        record(session, case, "offer_undone", at=now, actor=person.email, offer_id=offer.id, offer=offer.offer,
               reason=reason)  # fmt: skip
    return offer


@dataclass(frozen=True)
class TeamBudget:
    """One team's budget in the current period: what its applied offers spent and its waiting ones committed."""

    team: str
    lead: str | None
    total_minor: int
    spent_minor: int
    committed_minor: int
    remaining_minor: int


@dataclass(frozen=True)
class BudgetReport:
    """The current period's budgets, one per team (the default last)."""

    period: str
    period_start: datetime
    period_end: datetime
    currency: str
    teams: list[TeamBudget]


async def current_budget(session: AsyncSession, *, context: OfferContext) -> BudgetReport:
    """Every team's budget in the period holding now (a team dropped from the file but with offers shows too)."""
    rules = context.rules
    start, end = period_bounds(rules.period, context.clock.now())
    drawn = await repository.offer_budget_drawn(session, period_start=start, period_end=end)
    names = [*rules.team_names(), *sorted(set(drawn) - set(rules.team_names()))]
    teams = []
    for name in names:
        state = BudgetState(rules.budget_of(name), *drawn.get(name, (0, 0)), team=name)
        lead = rules.teams[name].lead if name in rules.teams else None
        teams.append(
            TeamBudget(name, lead, state.total_minor, state.spent_minor, state.committed_minor, state.remaining_minor)
        )
    return BudgetReport(period=rules.period, period_start=start, period_end=end, currency=rules.currency, teams=teams)


async def offers_of_case(session: AsyncSession, case_id: str) -> list[Offer]:
    """The case's offers, oldest first."""
    return await repository.offers_of_case(session, case_id)


async def offers_with_status(session: AsyncSession, status: str, *, limit: int, offset: int) -> list[Offer]:
    """Offers in one status, oldest first: ``awaiting_approval`` is the approvers' queue."""
    return await repository.offers_with_status(session, status, limit=limit, offset=offset)


async def customers_of(session: AsyncSession, case_ids: set[str]) -> dict[str, tuple[str | None, int | None]]:
    """The customer's name and monthly revenue of each case, for the approvers' queue."""
    return await repository.customers_of_cases(session, case_ids) if case_ids else {}
