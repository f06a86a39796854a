"""Save offers: one locked, the budget drawn, an account's offers, the lists."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import Case, Offer

OFFERS_COUNTED = ("awaiting_approval", "applied", "undone")  # what counts towards an account's offers a year
OFFERS_SPENT = ("applied", "undone")  # an undone offer stays spent: part of what it gave may have been used


async def locked_offer(session: AsyncSession, offer_id: str) -> Offer | None:
    """One offer, locked for this transaction: a second approval of it waits, then finds it decided."""
    query = select(Offer).where(Offer.id == offer_id).with_for_update().execution_options(populate_existing=True)
    return (await session.execute(query)).scalar_one_or_none()


async def lock_offer_budget(session: AsyncSession) -> None:
    """Serialise the budget's check-then-spend across instances (PostgreSQL; SQLite has a single writer)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('outreach_offers_budget'))"))


async def offer_budget_drawn(
    session: AsyncSession,
    *,
    period_start: datetime,
    period_end: datetime,
    team: str | None = None,
    leaving_out: str | None = None,
) -> dict[str, tuple[int, int]]:
    """(spent, committed) by team (or of one): the cost of offers applied in the period, and of those waiting."""
    spent = (
        select(Offer.team, func.sum(Offer.cost_minor))
        .where(Offer.status.in_(OFFERS_SPENT), Offer.applied_at >= period_start, Offer.applied_at < period_end)
        .group_by(Offer.team)
    )
    committed = (
        select(Offer.team, func.sum(Offer.cost_minor))
        .where(Offer.status == "awaiting_approval", Offer.id != (leaving_out or ""))
        .group_by(Offer.team)
    )
    if team is not None:
        spent, committed = spent.where(Offer.team == team), committed.where(Offer.team == team)
    spent_by = {name: int(total or 0) for name, total in await session.execute(spent)}
    committed_by = {name: int(total or 0) for name, total in await session.execute(committed)}
    return {name: (spent_by.get(name, 0), committed_by.get(name, 0)) for name in {*spent_by, *committed_by}}


async def account_offers(
    session: AsyncSession, account_id: str, *, since: datetime, leaving_out: str | None = None
) -> tuple[list[datetime], set[str]]:
    """When the account's counted offers since ``since`` were proposed, and the names of its offers that failed."""
    rows = await session.execute(
        select(Offer.status, Offer.proposed_at, Offer.offer).where(
            Offer.account_id == account_id, Offer.id != (leaving_out or "")
        )
    )
    counted, failed = [], set()
    for status, proposed_at, name in rows:
        if status in OFFERS_COUNTED and proposed_at >= since:
            counted.append(proposed_at)
        if status == "failed":
            failed.add(name)
    return counted, failed


async def offers_of_case(session: AsyncSession, case_id: str) -> list[Offer]:
    """The case's offers, oldest first."""
    query = select(Offer).where(Offer.case_id == case_id).order_by(Offer.proposed_at, Offer.id)
    return list((await session.execute(query)).scalars())


async def offers_with_status(session: AsyncSession, status: str, *, limit: int, offset: int) -> list[Offer]:
    """Offers in one status, oldest proposal first (what waits longest for approval comes first)."""
    query = (
        select(Offer).where(Offer.status == status).order_by(Offer.proposed_at, Offer.id).limit(limit).offset(offset)
    )
    return list((await session.execute(query)).scalars())


async def applied_offers_unconfirmed(
    session: AsyncSession, *, source: str, subscription_id: str, kinds: tuple[str, ...]
) -> list[Offer]:
    """The subscription's applied offers of these kinds whose webhook has not arrived yet, locked."""
    query = (
        select(Offer)
        .where(
            Offer.source == source,
            Offer.subscription_id == subscription_id,
            Offer.status == "applied",
            Offer.kind.in_(kinds),
            Offer.confirmed_at.is_(None),
        )
        .order_by(Offer.applied_at, Offer.id)
        .with_for_update()
    )
    return list((await session.execute(query)).scalars())


async def offer_applied_before(session: AsyncSession, case_id: str, *, before: datetime) -> bool:
    """Whether an offer was applied on the case before ``before``, a billing system's time in whole seconds: an offer
    applied within that second counts (the withdrawal it caused is stamped no later)."""
    query = select(Offer.id).where(
        Offer.case_id == case_id, Offer.status == "applied", Offer.applied_at < before + timedelta(seconds=1)
    )
    found = await session.scalar(query.limit(1))
    return found is not None


async def customers_of_cases(session: AsyncSession, case_ids: set[str]) -> dict[str, tuple[str | None, int | None]]:
    """(customer name, monthly revenue) by case id, for the cases offers wait on."""
    rows = await session.execute(
        select(Case.id, Case.customer_name, Case.mrr_minor).where(Case.id.in_(sorted(case_ids)))
    )
    return {case_id: (name, mrr) for case_id, name, mrr in rows}
