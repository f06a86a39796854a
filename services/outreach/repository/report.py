"""The rows the summary report tallies."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import Case, Offer
from services.outreach.repository.offer import OFFERS_SPENT

_REPORT_COLUMNS = (
    Case.status,
    Case.symptom,
    Case.root_cause,
    Case.confirmed_root_cause,
    Case.playbook,
    Case.owner,
    Case.initiated_by,
    Case.mrr_minor,
    Case.currency,
    Case.opened_at,
    Case.first_touched_at,
    Case.save_status,
)


async def report_rows(session: AsyncSession, *, since: datetime | None, until: datetime | None) -> Sequence[Any]:
    """What the summary report tallies, for cases opened in [since, until)."""
    query = select(*_REPORT_COLUMNS)
    if since:
        query = query.where(Case.opened_at >= since)
    if until:
        query = query.where(Case.opened_at < until)
    return (await session.execute(query)).all()


async def applied_offer_rows(session: AsyncSession, *, since: datetime | None, until: datetime | None) -> Sequence[Any]:
    """The offers applied (undone ones too: their cost stays spent) on cases opened in [since, until), with what
    became of their case, for the report."""
    query = (
        select(
            Offer.kind,
            Offer.currency,
            Offer.cost_minor,
            Case.status.label("case_status"),
            Case.save_status,
            Case.mrr_minor,
        )
        .join(Case, Case.id == Offer.case_id)
        .where(Offer.status.in_(OFFERS_SPENT))
    )
    if since:
        query = query.where(Case.opened_at >= since)
    if until:
        query = query.where(Case.opened_at < until)
    return (await session.execute(query)).all()
