"""Offers on Chargebee subscriptions, through the official library (``shared.billing.chargebee_connection``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.outreach.offer_actions.base import KindNotOffered, NothingToUndo, Preview, SubscriptionGone
from services.outreach.offer_rules import OfferTerms
from shared.billing.chargebee_connection import ChargebeeConnection

REMOVE_SCHEDULED_CANCELLATION = "remove_scheduled_cancellation"
KEPT = ("active", "in_trial", "future")


def _day(timestamp: int | None) -> str:
    return "an unknown date" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).date().isoformat()


class ChargebeeOfferActions:
    """Keep the subscription: ``remove_scheduled_cancellation`` on a ``non_renewing`` subscription."""

    source = "chargebee"

    def __init__(self, connection: ChargebeeConnection) -> None:
        self._connection = connection

    async def preview(self, subscription_id: str, terms: OfferTerms) -> Preview:
        if terms.kind != "keep_subscription":
            raise KindNotOffered(f"Chargebee offers have no {terms.kind} action yet; only keep_subscription")
        subscription = await self._connection.retrieve_subscription(subscription_id)
        status = subscription.get("status")
        if status == "cancelled":
            raise SubscriptionGone(
                f"subscription {subscription_id} has already ended (cancelled); keeping it would need reactivate"
            )
        if status != "non_renewing":
            raise NothingToUndo(f"subscription {subscription_id} has no scheduled cancellation to remove ({status})")
        return Preview(
            f"Removes the cancellation scheduled for {_day(subscription.get('cancelled_at'))}: the subscription renews.",
            {"operation": REMOVE_SCHEDULED_CANCELLATION},
        )

    async def apply(self, subscription_id: str, params: dict[str, Any], *, idempotency_key: str) -> None:
        if params.get("operation") != REMOVE_SCHEDULED_CANCELLATION:
            raise KindNotOffered(f"Chargebee has no operation {params.get('operation')!r} here")
        await self._connection.remove_scheduled_cancellation(subscription_id, idempotency_key=idempotency_key)

    async def verify(self, subscription_id: str, params: dict[str, Any]) -> bool:
        subscription = await self._connection.retrieve_subscription(subscription_id)
        return subscription.get("status") in KEPT
