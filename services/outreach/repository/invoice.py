"""Paid invoices: each subscription's newest, kept for a withdrawal that reaches outreach after it."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach.models import PaidInvoice
from shared.db import upsert_into

PAID_INVOICES = PaidInvoice.__table__


class NewestPaidInvoice(NamedTuple):
    paid_version: int
    source_event_id: str


async def remember_paid_invoice(
    session: AsyncSession, cancellation_id: str, *, version: int, source_event_id: str, now: datetime
) -> None:
    """Keep the invoice as the subscription's newest paid one, unless a newer one is kept already."""
    insert = upsert_into(session, PAID_INVOICES).values(
        cancellation_id=cancellation_id, paid_version=version, source_event_id=source_event_id, received_at=now
    )
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[PAID_INVOICES.c.cancellation_id],
            set_={
                "paid_version": insert.excluded.paid_version,
                "source_event_id": insert.excluded.source_event_id,
                "received_at": insert.excluded.received_at,
            },
            where=insert.excluded.paid_version > PAID_INVOICES.c.paid_version,
        )
    )


async def newest_paid_invoice(session: AsyncSession, cancellation_id: str) -> NewestPaidInvoice | None:
    """The subscription's newest paid invoice received, if any."""
    row = (
        await session.execute(
            select(PAID_INVOICES.c.paid_version, PAID_INVOICES.c.source_event_id).where(
                PAID_INVOICES.c.cancellation_id == cancellation_id
            )
        )
    ).one_or_none()
    return NewestPaidInvoice(*row) if row else None
