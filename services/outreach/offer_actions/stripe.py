"""Offers on Stripe subscriptions, through the official library (``shared.billing.stripe_connection``).

The stored parameters say what to send: ``coupon`` (created first), then ``update`` (Update a subscription) or
``create`` (a new subscription), and how to take it back (``undo``, itself an ``update``)."""

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
from shared.billing.stripe_connection import StripeConnection

ENDED = ("canceled", "incomplete_expired")
RUNNING = ("active", "trialing", "past_due")


def _period_end(subscription: dict[str, Any]) -> int:
    """The end of what is paid for: on the subscription in older API versions, on its items in newer ones."""
    items = _items(subscription)
    return int(subscription.get("current_period_end") or (items[0].get("current_period_end") if items else 0) or 0)


def _items(subscription: dict[str, Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (subscription.get("items") or {}).get("data") or []
    return items


def _plan_of(item: dict[str, Any]) -> str:
    return str((item.get("price") or item.get("plan") or {}).get("id"))


def _coupon_ids(subscription: dict[str, Any]) -> set[str]:
    """The coupons behind the subscription's discounts (each discount expanded; its coupon an id or an object)."""
    found: set[str] = set()
    for discount in subscription.get("discounts") or []:
        if isinstance(discount, dict):
            coupon = (discount.get("source") or {}).get("coupon") or discount.get("coupon")
            found.add(str(coupon.get("id") if isinstance(coupon, dict) else coupon))
    return found


def _holds(subscription: dict[str, Any], name: str, value: Any) -> bool:
    """Whether one updated field reads back as sent ("" is how Stripe is told to clear a field)."""
    if value == "":
        return not subscription.get(name)
    if name == "items":
        return [_plan_of(item) for item in _items(subscription)] == [item["plan"] for item in value]
    if name == "discounts":
        return {entry["coupon"] for entry in value} <= _coupon_ids(subscription)
    if isinstance(value, dict):
        found = subscription.get(name) or {}
        return all(found.get(key) == wanted for key, wanted in value.items())
    return bool(subscription.get(name) == value)


class StripeOfferActions:
    """Keep the subscription (``cancel_at_period_end=false`` or ``cancel_at`` cleared; a cancelled one: a new
    subscription on the same plan), free time (``trial_end``), a discount (a ``repeating`` coupon on the
    subscription), a pause (``pause_collection``), a cheaper plan (the item's plan swapped)."""

    source = "stripe"

    def __init__(self, connection: StripeConnection) -> None:
        self._connection = connection

    async def preview(self, subscription_id: str, terms: OfferTerms, *, reference: str, now: datetime) -> Preview:
        expand = ["discounts"] if terms.kind == "discount" else []  # only what the kind needs (localstripe: none)
        subscription = await self._connection.retrieve_subscription(subscription_id, expand=expand)
        status = subscription.get("status")
        if terms.kind == "keep_subscription" and status == "canceled":
            return self._reactivation(subscription, reference)
        if status in ENDED:
            raise SubscriptionGone(
                f"subscription {subscription_id} has already ended ({status}); only keeping it (a new subscription "
                "on the same plan) is offered on it"
            )
        if terms.kind == "keep_subscription":
            return self._keep(subscription)
        if terms.kind == "free_time":
            return self._free_time(subscription, terms)
        if terms.kind == "discount":
            return self._discount(subscription, terms, reference)
        if terms.kind == "pause":
            return self._pause(subscription, terms, now)
        return await self._cheaper_plan(subscription, terms)

    def _keep(self, subscription: dict[str, Any]) -> Preview:
        if subscription.get("cancel_at_period_end"):
            ends = _period_end(subscription)
            return Preview(
                f"Removes the cancellation at the end of the period ({day(ends)}): the subscription renews then.",
                {
                    "update": {"cancel_at_period_end": False},
                    UNDO: {"update": {"cancel_at_period_end": True}},
                    UNDO_UNTIL: ends,
                },
            )
        if subscription.get("cancel_at"):
            cancel_at = subscription["cancel_at"]
            return Preview(
                f"Removes the cancellation scheduled for {day(cancel_at)}: the subscription renews.",
                {"update": {"cancel_at": ""}, UNDO: {"update": {"cancel_at": cancel_at}}, UNDO_UNTIL: cancel_at},
            )
        raise NothingToUndo(f"subscription {subscription['id']} has no scheduled cancellation to remove")

    def _reactivation(self, subscription: dict[str, Any], reference: str) -> Preview:
        items = [{"plan": _plan_of(item), "quantity": item.get("quantity") or 1} for item in _items(subscription)]
        if not items:
            raise SubscriptionGone(f"subscription {subscription['id']} has ended and has no plan to start again on")
        plans = ", ".join(f"{item['plan']} x {item['quantity']}" for item in items)
        return Preview(
            f"Stripe cannot restart an ended subscription: this creates a NEW subscription for customer "
            f"{subscription['customer']} on the same plan ({plans}), billed from today; {subscription['id']} stays "
            "ended.",
            {
                "create": {
                    "customer": subscription["customer"],
                    "items": items,
                    "metadata": {"brink_offer": reference, "replaces": subscription["id"]},
                },
                NO_UNDO: "a reactivation on Stripe made a new, billed subscription; ending it is a new cancellation, "
                "not an undo",
            },
        )

    def _free_time(self, subscription: dict[str, Any], terms: OfferTerms) -> Preview:
        paid_until = max(_period_end(subscription), subscription.get("trial_end") or 0)
        free_until = paid_until + terms.days * SECONDS_PER_DAY
        return Preview(
            f"{terms.days} days free: the next invoice moves from {day(paid_until)} to {day(free_until)}.",
            {"update": {"trial_end": free_until}, UNDO: {"update": {"trial_end": paid_until}}, UNDO_UNTIL: paid_until},
        )

    def _discount(self, subscription: dict[str, Any], terms: OfferTerms, reference: str) -> Preview:
        if subscription.get("discounts"):
            raise OfferActionError(
                f"subscription {subscription['id']} already has a discount; an offer neither stacks on one nor "
                "replaces it"
            )
        coupon = {
            "id": reference,
            "percent_off": terms.percent_off,
            "duration": "repeating",
            "duration_in_months": terms.months,
            "metadata": {"brink_offer": reference},
        }
        return Preview(
            f"{terms.percent_off}% off the next {terms.months} months of invoices: a coupon {reference} "
            f"(repeating, {terms.months} months) on the subscription.",
            {"coupon": coupon, "update": {"discounts": [{"coupon": reference}]}, UNDO: {"update": {"discounts": ""}}},
        )

    def _pause(self, subscription: dict[str, Any], terms: OfferTerms, now: datetime) -> Preview:
        if subscription.get("pause_collection"):
            raise OfferActionError(f"subscription {subscription['id']}'s collection is already paused")
        # From the end of what is paid: exactly ``months`` invoices are voided, what the offer's cost counts.
        paid_until = max(_period_end(subscription), subscription.get("trial_end") or 0, int(now.timestamp()))
        resumes_at = months_from(paid_until, terms.months)
        return Preview(
            f"Pauses collection for {terms.months} months: the invoices made from {day(paid_until)} until "
            f"{day(resumes_at)} are voided (nothing is charged), then collection resumes; the subscription stays "
            "active.",
            {
                "update": {"pause_collection": {"behavior": "void", "resumes_at": resumes_at}},
                UNDO: {"update": {"pause_collection": ""}},
            },
        )

    async def _cheaper_plan(self, subscription: dict[str, Any], terms: OfferTerms) -> Preview:
        target = terms.price_at(self.source)
        if target is None:
            raise KindNotOffered(f"{terms.name} names no Stripe plan (prices.stripe in the offers file)")
        items = _items(subscription)
        if len(items) != 1:
            raise OfferActionError(f"subscription {subscription['id']} has {len(items)} items; a plan move needs one")
        item, current = items[0], _plan_of(items[0])
        if current == target:
            raise NothingToUndo(f"subscription {subscription['id']} is already on {target}")
        plan = await target_plan(self._connection.retrieve_plan(target), offer=terms.name, plan=target, vendor="Stripe")
        paying_in = (item.get("price") or item.get("plan") or {}).get("currency")
        if plan.get("currency") != paying_in:
            raise OfferActionError(f"plan {target} bills in {plan.get('currency')}, the subscription in {paying_in}")
        quantity = int(item.get("quantity") or 1)
        monthly = monthly_minor(
            int(plan.get("amount") or 0),
            quantity=quantity,
            interval=plan.get("interval") or "",
            interval_count=int(plan.get("interval_count") or 1),
        )
        return Preview(
            f"Moves from plan {current} to {target} ({monthly} {plan.get('currency')} a month for {quantity}) from "
            "now; Stripe prorates the rest of the period as the account is set to.",
            {
                "update": {"items": [{"id": item["id"], "plan": target}]},
                UNDO: {"update": {"items": [{"id": item["id"], "plan": current}]}},
            },
            monthly_after_minor=monthly,
        )

    async def apply(self, subscription_id: str, params: dict[str, Any], *, idempotency_key: str) -> Applied:
        if "coupon" in params:
            await ensure_coupon(self._connection, params["coupon"], idempotency_key=f"{idempotency_key}-coupon")
        if "create" in params:
            return Applied(await self._new_subscription(params["create"], idempotency_key=idempotency_key))
        await self._connection.update_subscription(subscription_id, params["update"], idempotency_key=idempotency_key)
        return Applied(subscription_id)

    async def _new_subscription(self, create: dict[str, Any], *, idempotency_key: str) -> str:
        """The reactivation's subscription: the one made already for this offer (found by its metadata, should the
        idempotency key have expired since the first try), else a new one."""
        for made in await self._connection.customer_subscriptions(create["customer"]):
            if (made.get("metadata") or {}).get("brink_offer") == create["metadata"]["brink_offer"]:
                return str(made["id"])
        created = await self._connection.create_subscription(create, idempotency_key=idempotency_key)
        return str(created["id"])

    async def verify(self, subscription_id: str, params: dict[str, Any]) -> bool:
        expand = ["discounts"] if "discounts" in params.get("update", {}) else []
        subscription = await self._connection.retrieve_subscription(subscription_id, expand=expand)
        if "create" in params:
            return subscription.get("status") in RUNNING
        if subscription.get("status") in ENDED:
            return False
        return all(_holds(subscription, name, value) for name, value in params["update"].items())

    async def ended(self, subscription_id: str) -> str | None:
        status = (await self._connection.retrieve_subscription(subscription_id)).get("status")
        return str(status) if status in ENDED else None
