"""An applied offer confirmed by the billing system's own word, besides the read-back at apply: the webhook of the
change it made arriving afterwards (a ``cancellation.withdrawn`` for a subscription whose cancellation it removed)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.history import record
from services.outreach.models import Offer

# The offer kinds whose change the billing system reports as the cancellation withdrawn.
CONFIRMED_BY_WITHDRAWAL = ("keep_subscription",)


async def confirm_by_withdrawal(
    session: AsyncSession, cancellation_id: str, *, now: datetime, source_event_id: str | None
) -> list[Offer]:
    """Mark the subscription's applied offers that withdraw its cancellation as confirmed, each in its case's
    history; those confirmed already are left as they are."""
    source, _, subscription_id = cancellation_id.partition(":")
    confirmed = await repository.applied_offers_unconfirmed(
        session, source=source, subscription_id=subscription_id, kinds=CONFIRMED_BY_WITHDRAWAL
    )
    for offer in confirmed:
        offer.confirmed_at = now
        case = await repository.case_by_id(session, offer.case_id)
        record(session, case, "offer_confirmed", at=now, offer_id=offer.id, offer=offer.offer,
               by_event="cancellation.withdrawn", source_event_id=source_event_id)  # fmt: skip
    return confirmed
