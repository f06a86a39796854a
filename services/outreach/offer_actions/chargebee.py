"""Offers on Chargebee subscriptions, through the official library (``shared.billing.chargebee_connection``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.outreach.offer_actions.base import (
    UNDO,
    UNDO_UNTIL,
    Applied,
    KindNotOffered,
    NothingToUndo,
    Preview,
    SubscriptionGone,
    day,
)
from services.outreach.offer_rules import OfferTerms
from shared.billing.chargebee_connection import ChargebeeConnection

REMOVE_SCHEDULED_CANCELLATION = "remove_scheduled_cancellation"
CANCEL_AT_TERM_END = "cancel_at_term_end"
KEPT = ("active", "in_trial", "future")


class ChargebeeOfferActions:
    """Keep the subscription: ``remove_scheduled_cancellation`` on a ``non_renewing`` subscription."""

    source = "chargebee"

    def __init__(self, connection: ChargebeeConnection) -> None:
        self._connection = connection

    async def preview(self, subscription_id: str, terms: OfferTerms, *, reference: str, now: datetime) -> Preview:
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
        ends = subscription.get("cancelled_at")
        return Preview(
            f"Removes the cancellation scheduled for {day(ends)}: the subscription renews.",
            {"operation": REMOVE_SCHEDULED_CANCELLATION, UNDO: {"operation": CANCEL_AT_TERM_END}, UNDO_UNTIL: ends},
        )

    async def apply(self, subscription_id: str, params: dict[str, Any], *, idempotency_key: str) -> Applied:
        operation = params.get("operation")
        if operation == REMOVE_SCHEDULED_CANCELLATION:
            await self._connection.remove_scheduled_cancellation(subscription_id, idempotency_key=idempotency_key)
        else:
            raise KindNotOffered(f"Chargebee has no operation {operation!r} here")
        return Applied(subscription_id)

    async def verify(self, subscription_id: str, params: dict[str, Any]) -> bool:
        subscription = await self._connection.retrieve_subscription(subscription_id)
        return subscription.get("status") in KEPT
