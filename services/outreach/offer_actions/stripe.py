"""Offers on Stripe subscriptions, through the official library (``shared.billing.stripe_connection``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.outreach.offer_actions.base import KindNotOffered, NothingToUndo, Preview, SubscriptionGone
from services.outreach.offer_rules import OfferTerms
from shared.billing.stripe_connection import StripeConnection

ENDED = ("canceled", "incomplete_expired")
SECONDS_PER_DAY = 86_400


def _day(timestamp: int | None) -> str:
    return "an unknown date" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).date().isoformat()


class StripeOfferActions:
    """Keep the subscription: ``cancel_at_period_end=false``, or ``cancel_at`` cleared (Stripe takes "" for none).
    Free time: ``trial_end`` moved to the days after what is paid for (the later of the period's end and a trial's)."""

    source = "stripe"

    def __init__(self, connection: StripeConnection) -> None:
        self._connection = connection

    async def preview(self, subscription_id: str, terms: OfferTerms) -> Preview:
        if terms.kind not in ("keep_subscription", "free_time"):
            raise KindNotOffered(f"Stripe offers have no {terms.kind} action yet; only keep_subscription and free_time")
        subscription = await self._connection.retrieve_subscription(subscription_id)
        if subscription.get("status") in ENDED:
            raise SubscriptionGone(
                f"subscription {subscription_id} has already ended ({subscription['status']}); an offer on it would "
                "need a new subscription"
            )
        if terms.kind == "free_time":
            paid_until = max(subscription.get("current_period_end") or 0, subscription.get("trial_end") or 0)
            free_until = paid_until + terms.days * SECONDS_PER_DAY
            return Preview(
                f"{terms.days} days free: the next invoice moves from {_day(paid_until)} to {_day(free_until)}.",
                {"trial_end": free_until},
            )
        if subscription.get("cancel_at_period_end"):
            ends = subscription.get("current_period_end")
            return Preview(
                f"Removes the cancellation at the end of the period ({_day(ends)}): the subscription renews then.",
                {"cancel_at_period_end": False},
            )
        if subscription.get("cancel_at"):
            return Preview(
                f"Removes the cancellation scheduled for {_day(subscription['cancel_at'])}: the subscription renews.",
                {"cancel_at": ""},
            )
        raise NothingToUndo(f"subscription {subscription_id} has no scheduled cancellation to remove")

    async def apply(self, subscription_id: str, params: dict[str, Any], *, idempotency_key: str) -> None:
        await self._connection.update_subscription(subscription_id, params, idempotency_key=idempotency_key)

    async def verify(self, subscription_id: str, params: dict[str, Any]) -> bool:
        subscription = await self._connection.retrieve_subscription(subscription_id)
        if subscription.get("status") in ENDED:
            return False
        # A cleared field reads back as null ("" is how Stripe is told to clear it).
        return all(subscription.get(name) == (None if value == "" else value) for name, value in params.items())
