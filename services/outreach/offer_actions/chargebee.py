"""Offers on Chargebee subscriptions (Product Catalog 2.0), through the official library
(``shared.billing.chargebee_connection``).

The stored parameters say what to send: ``coupon`` (created first), then one subscription ``action`` with its
``params``, and how to take it back (``undo``, itself an action with its parameters)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.outreach.offer_actions.base import (
    NO_UNDO,
    SECONDS_PER_DAY,
    UNDO,
    UNDO_UNTIL,
    Applied,
    KindNotOffered,
    NothingToUndo,
    OfferActionError,
    Preview,
    SubscriptionGone,
    day,
    ensure_coupon,
    monthly_minor,
    months_from,
    target_plan,
)
from services.outreach.offer_rules import OfferTerms
from shared.billing.chargebee_connection import ChargebeeConnection

KEPT = ("active", "in_trial", "future")
RUNNING = ("active", "in_trial", "non_renewing")


def _plan_item(subscription: dict[str, Any]) -> dict[str, Any] | None:
    items = subscription.get("subscription_items") or []
    return next((item for item in items if item.get("item_type") == "plan"), None)


def _coupon_ids(subscription: dict[str, Any]) -> set[str]:
    return {str(coupon.get("coupon_id")) for coupon in subscription.get("coupons") or []}


def _holds(subscription: dict[str, Any], action: str, params: dict[str, Any]) -> bool:
    """Whether the subscription, read back, shows what the action did."""
    status = subscription.get("status")
    if action in ("remove_scheduled_cancellation", "reactivate", "resume"):
        return status in KEPT
    if action == "cancel_for_items":
        return status == "non_renewing"
    if action == "change_term_end":
        return bool(subscription.get("current_term_end") == params["term_ends_at"])
    if action == "pause":
        return status == "paused" and subscription.get("resume_date") == params["resume_date"]
    if action == "remove_coupons":
        return not set(params["coupon_ids"]) & _coupon_ids(subscription)
    if "coupon_ids" in params:
        return set(params["coupon_ids"]) <= _coupon_ids(subscription)
    plan = _plan_item(subscription) or {}
    return bool(plan.get("item_price_id") == params["subscription_items"][0]["item_price_id"])


class ChargebeeOfferActions:
    """Keep the subscription (``remove_scheduled_cancellation``; a cancelled one ``reactivate``), free time
    (``change_term_end``), a discount (a ``limited_period`` coupon through ``update_for_items``), a pause
    (``pause`` with a resume date), a cheaper plan (the plan's item price swapped through ``update_for_items``)."""

    source = "chargebee"

    def __init__(self, connection: ChargebeeConnection) -> None:
        self._connection = connection

    async def preview(self, subscription_id: str, terms: OfferTerms, *, reference: str, now: datetime) -> Preview:
        subscription = await self._connection.retrieve_subscription(subscription_id)
        status = subscription.get("status")
        if terms.kind == "keep_subscription":
            return self._keep(subscription)
        if status not in RUNNING:
            raise SubscriptionGone(
                f"subscription {subscription_id} is {status}: a {terms.kind} offer needs it running"
                + ("; only keeping it (reactivate) is offered on it" if status == "cancelled" else "")
            )
        if terms.kind == "free_time":
            return self._free_time(subscription, terms)
        if terms.kind == "discount":
            return self._discount(subscription, terms, reference)
        if terms.kind == "pause":
            return self._pause(subscription, terms, now)
        return await self._cheaper_plan(subscription, terms)

    def _keep(self, subscription: dict[str, Any]) -> Preview:
        subscription_id, status = subscription["id"], subscription.get("status")
        if status == "cancelled":
            return Preview(
                f"Reactivates subscription {subscription_id} (cancelled on {day(subscription.get('cancelled_at'))}) "
                "on its plan: Chargebee starts a new term and invoices it as the site is set to.",
                {
                    "action": "reactivate",
                    "params": {},
                    NO_UNDO: "a reactivation has started a new, invoiced term; cancelling it is a new cancellation, "
                    "not an undo",
                },
            )
        if status != "non_renewing":
            raise NothingToUndo(f"subscription {subscription_id} has no scheduled cancellation to remove ({status})")
        ends = subscription.get("cancelled_at")
        return Preview(
            f"Removes the cancellation scheduled for {day(ends)}: the subscription renews.",
            {
                "action": "remove_scheduled_cancellation",
                "params": {},
                UNDO: {"action": "cancel_for_items", "params": {"end_of_term": True}},
                UNDO_UNTIL: ends,
            },
        )

    def _free_time(self, subscription: dict[str, Any], terms: OfferTerms) -> Preview:
        term_end = int(subscription.get("current_term_end") or 0)
        later = term_end + terms.days * SECONDS_PER_DAY
        return Preview(
            f"{terms.days} days free: the current term ends on {day(later)} instead of {day(term_end)}, so the next "
            "invoice comes that much later (change_term_end, not prorated).",
            {
                "action": "change_term_end",
                "params": {"term_ends_at": later, "prorate": False},
                UNDO: {"action": "change_term_end", "params": {"term_ends_at": term_end, "prorate": False}},
                UNDO_UNTIL: term_end,
            },
        )

    def _discount(self, subscription: dict[str, Any], terms: OfferTerms, reference: str) -> Preview:
        if subscription.get("coupons"):
            raise OfferActionError(
                f"subscription {subscription['id']} already has a coupon; an offer neither stacks on one nor "
                "replaces it"
            )
        coupon = {
            "id": reference,
            "name": reference,
            "discount_type": "percentage",
            "discount_percentage": terms.percent_off,
            "apply_on": "invoice_amount",
            "duration_type": "limited_period",
            "period": terms.months,
            "period_unit": "month",
        }
        return Preview(
            f"{terms.percent_off}% off the invoices of the next {terms.months} months: a coupon {reference} "
            f"(limited period, {terms.months} months) on the subscription.",
            {
                "coupon": coupon,
                "action": "update_for_items",
                "params": {"coupon_ids": [reference]},
                UNDO: {"action": "remove_coupons", "params": {"coupon_ids": [reference]}},
            },
        )

    def _pause(self, subscription: dict[str, Any], terms: OfferTerms, now: datetime) -> Preview:
        if subscription.get("pause_date") or subscription.get("status") == "paused":
            raise OfferActionError(f"subscription {subscription['id']} is already paused, or a pause is scheduled")
        resume_date = months_from(int(now.timestamp()), terms.months)
        return Preview(
            f"Pauses the subscription now for {terms.months} months: nothing is invoiced until it resumes on "
            f"{day(resume_date)}.",
            {
                "action": "pause",
                "params": {"pause_option": "immediately", "resume_date": resume_date},
                UNDO: {"action": "resume", "params": {"resume_option": "immediately"}},
            },
        )

    async def _cheaper_plan(self, subscription: dict[str, Any], terms: OfferTerms) -> Preview:
        target = terms.price_at(self.source)
        if target is None:
            raise KindNotOffered(f"{terms.name} names no Chargebee item price (prices.chargebee in the offers file)")
        plan = _plan_item(subscription)
        if plan is None:
            raise OfferActionError(f"subscription {subscription['id']} has no plan item to move")
        current, quantity = plan["item_price_id"], int(plan.get("quantity") or 1)
        if current == target:
            raise NothingToUndo(f"subscription {subscription['id']} is already on {target}")
        price = await target_plan(
            self._connection.retrieve_item_price(target), offer=terms.name, plan=target, vendor="Chargebee"
        )
        if price.get("currency_code") != subscription.get("currency_code"):
            raise OfferActionError(
                f"item price {target} bills in {price.get('currency_code')}, the subscription in "
                f"{subscription.get('currency_code')}"
            )
        monthly = monthly_minor(
            int(price.get("price") or 0),
            quantity=quantity,
            interval=price.get("period_unit") or "",
            interval_count=int(price.get("period") or 1),
        )
        return Preview(
            f"Moves the plan from {current} to {target} ({monthly} {price.get('currency_code')} a month for "
            f"{quantity}) now; Chargebee prorates as the site is set to.",
            {
                "action": "update_for_items",
                "params": {"subscription_items": [{"item_price_id": target, "quantity": quantity}]},
                UNDO: {
                    "action": "update_for_items",
                    "params": {"subscription_items": [{"item_price_id": current, "quantity": quantity}]},
                },
            },
            monthly_after_minor=monthly,
        )

    async def apply(self, subscription_id: str, params: dict[str, Any], *, idempotency_key: str) -> Applied:
        if "coupon" in params:
            await ensure_coupon(self._connection, params["coupon"], idempotency_key=f"{idempotency_key}-coupon")
        await self._connection.change_subscription(
            subscription_id, params["action"], params["params"], idempotency_key=idempotency_key
        )
        return Applied(subscription_id)

    async def verify(self, subscription_id: str, params: dict[str, Any]) -> bool:
        subscription = await self._connection.retrieve_subscription(subscription_id)
        return _holds(subscription, params["action"], params["params"])

    async def ended(self, subscription_id: str) -> str | None:
        status = (await self._connection.retrieve_subscription(subscription_id)).get("status")
        return "cancelled" if status == "cancelled" else None
