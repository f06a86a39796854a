"""Chargebee events to Brink events: plain functions over the parsed webhook, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.intake.mapping_common import (
    Ignored,
    account_id_for,
    account_owner_in,
    as_int,
    object_at,
    plan_line,
    timestamp,
    total_mrr,
)
from shared.events import (
    MAX_NAME_LENGTH,
    CancellationReceived,
    CancellationWithdrawn,
    Initiator,
    Payload,
    PlanLine,
    clip,
)

__all__ = ["CHARGEBEE_MAPPED_TYPES", "Ignored", "initiator", "map_chargebee_event", "plan_lines"]

# Chargebee's own reasons for cancelling a subscription it could not collect for.
INVOLUNTARY_REASONS = {"not_paid", "no_card"}
# Chargebee's event ``source``: who or what made the change.
SOURCE_INITIATORS: dict[str, Initiator] = {
    "scheduled_job": "billing_system",
    "system": "billing_system",
    "admin_console": "staff",
    "bulk_operation": "staff",
    "portal": "customer",
    "hosted_page": "customer",
    "js_api": "customer",
}


def initiator(event: dict[str, Any], cancel_reason: str | None = None) -> Initiator:
    """Chargebee's own reason (unpaid, no card) or its scheduled jobs mean the billing system did it."""
    if cancel_reason in INVOLUNTARY_REASONS:
        return "billing_system"
    return SOURCE_INITIATORS.get(str(event.get("source") or ""), "unknown")


def plan_lines(subscription: dict[str, Any]) -> list[PlanLine]:
    """Plan and add-ons (Product Catalog 1.0) or ``subscription_items`` (2.0), with monthly values."""
    interval = str(subscription.get("billing_period_unit") or "month")
    interval_count = as_int(subscription.get("billing_period"), 1)
    currency = subscription.get("currency_code")
    items = subscription.get("subscription_items")
    if isinstance(items, list) and items:
        return [
            plan_line(
                plan_id=str(item.get("item_price_id") or "unknown"),
                name=item.get("item_type"),
                quantity=as_int(item.get("quantity"), 1),
                unit_amount=as_int(item.get("unit_price")) if item.get("unit_price") is not None else None,
                amount=as_int(item.get("amount")) if item.get("amount") is not None else None,
                currency=currency,
                interval=interval,
                interval_count=interval_count,
            )
            # One-off charges recur never, so they carry no MRR.
            for item in items
            if isinstance(item, dict) and item.get("item_type") != "charge"
        ]
    lines: list[PlanLine] = []
    if subscription.get("plan_id"):
        unit = subscription.get("plan_unit_price")
        lines.append(
            plan_line(
                plan_id=str(subscription["plan_id"]),
                name=None,
                quantity=as_int(subscription.get("plan_quantity"), 1),
                unit_amount=as_int(unit) if unit is not None else None,
                amount=as_int(subscription["plan_amount"]) if subscription.get("plan_amount") is not None else None,
                currency=currency,
                interval=interval,
                interval_count=interval_count,
            )
        )
    for addon in subscription.get("addons") or []:
        if not isinstance(addon, dict):
            continue
        unit = addon.get("unit_price")
        lines.append(
            plan_line(
                plan_id=str(addon.get("id") or "unknown"),
                name="addon",
                quantity=as_int(addon.get("quantity"), 1),
                unit_amount=as_int(unit) if unit is not None else None,
                amount=as_int(addon["amount"]) if addon.get("amount") is not None else None,
                currency=currency,
                interval=interval,
                interval_count=interval_count,
            )
        )
    return lines


def _parts(event: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    content = event.get("content")
    if not isinstance(content, dict) or not isinstance(content.get("subscription"), dict):
        raise ValueError("content.subscription is missing")
    customer = object_at(content, "customer")
    return content["subscription"], customer


def _common(event: dict[str, Any], subscription: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    customer_id = str(subscription.get("customer_id") or customer.get("id") or "")
    if not customer_id:
        raise ValueError("the subscription has no customer_id")
    subscription_id = str(subscription["id"])
    # resource_version is Chargebee's own ordering key (milliseconds); occurred_at is the fallback.
    version = subscription.get("resource_version")
    return {
        "cancellation_id": f"chargebee:{subscription_id}",
        "account_id": account_id_for("chargebee", customer_id, customer.get("meta_data")),
        "source": "chargebee",
        "source_event_id": event["id"],
        "source_event_type": event["event_type"],
        "customer_id": customer_id,
        "subscription_id": subscription_id,
        "state_version": as_int(version) if version is not None else as_int(event.get("occurred_at")) * 1000,
    }


def _customer_name(customer: dict[str, Any]) -> str | None:
    person = " ".join(part for part in (customer.get("first_name"), customer.get("last_name")) if part)
    return clip(customer.get("company") or person, MAX_NAME_LENGTH)


def _received(
    event: dict[str, Any], *, scheduled: bool, billing_reason: str | None = None, effective: Any = None
) -> CancellationReceived:
    subscription, customer = _parts(event)
    reason = billing_reason or subscription.get("cancel_reason")
    lines = plan_lines(subscription)
    return CancellationReceived(
        **_common(event, subscription, customer),
        customer_email=customer.get("email"),
        customer_name=_customer_name(customer),
        account_owner=account_owner_in(customer.get("meta_data"), subscription.get("meta_data")),
        plans=lines,
        mrr=total_mrr(lines),
        billing_reason=reason,
        feedback=subscription.get("cancel_reason_code"),
        initiated_by=initiator(event, reason),
        initiated_by_detail=clip(str(event["user"]), MAX_NAME_LENGTH) if event.get("user") else None,
        involuntary=reason in INVOLUNTARY_REASONS or reason == "payment_failed",
        scheduled=scheduled,
        effective_at=timestamp(effective if effective is not None else event.get("occurred_at")),
        livemode=True,
    )


def map_cancelled(event: dict[str, Any]) -> CancellationReceived:
    """The subscription is cancelled now."""
    subscription, _ = _parts(event)
    return _received(event, scheduled=False, effective=subscription.get("cancelled_at"))


def map_cancellation_scheduled(event: dict[str, Any]) -> CancellationReceived:
    """The subscription will not renew: it ends at ``cancelled_at`` (usually the term end)."""
    subscription, _ = _parts(event)
    return _received(
        event, scheduled=True, effective=subscription.get("cancelled_at") or subscription.get("current_term_end")
    )


def _withdrawn(reason: str) -> Callable[[dict[str, Any]], CancellationWithdrawn]:
    def mapper(event: dict[str, Any]) -> CancellationWithdrawn:
        subscription, customer = _parts(event)
        return CancellationWithdrawn(**_common(event, subscription, customer), reason=reason)

    mapper.__doc__ = f"The customer is staying ({reason})."
    return mapper


def map_payment_failed(event: dict[str, Any]) -> CancellationReceived:
    """Dunning is over (no retry left) for a subscription: an involuntary cancellation risk."""
    content = event.get("content") or {}
    invoice = object_at(content, "invoice")
    if invoice.get("next_retry_at") is not None or invoice.get("dunning_status") == "in_progress":
        raise Ignored("Chargebee will retry the payment; not yet a cancellation risk")
    if not isinstance(content.get("subscription"), dict):
        raise Ignored("the failed payment belongs to no subscription")
    return _received(event, scheduled=False, billing_reason="payment_failed")


def map_payment_succeeded(event: dict[str, Any]) -> CancellationWithdrawn:
    """A subscription's payment went through: ends a payment failure (intake publishes it only over one)."""
    content = event.get("content") or {}
    if not isinstance(content.get("subscription"), dict):
        raise Ignored("the payment belongs to no subscription")
    subscription, customer = _parts(event)
    common = _common(event, subscription, customer)
    # The subscription often does not change when a payment goes through, so its resource_version can equal the
    # failure's; the payment's own (transaction, invoice) is when it happened.
    versions = [object_at(content, name).get("resource_version") for name in ("transaction", "invoice")]
    common["state_version"] = max([common["state_version"], *(as_int(v) for v in versions if v is not None)])
    return CancellationWithdrawn(**common, reason="payment_recovered")


MAPPERS: dict[str, Callable[[dict[str, Any]], Payload]] = {
    "subscription_cancelled": map_cancelled,
    "subscription_cancellation_scheduled": map_cancellation_scheduled,
    "subscription_scheduled_cancellation_removed": _withdrawn("scheduled_cancellation_removed"),
    "subscription_reactivated": _withdrawn("reactivated"),
    "payment_failed": map_payment_failed,
    "payment_succeeded": map_payment_succeeded,
}
CHARGEBEE_MAPPED_TYPES = frozenset(MAPPERS)


def map_chargebee_event(event: dict[str, Any]) -> Payload:
    """The Brink event for a Chargebee event, or ``Ignored`` when it is not about a cancellation."""
    mapper = MAPPERS.get(str(event.get("event_type", "")))
    if mapper is None:
        raise Ignored(f"event type {event.get('event_type')!r} is not about a cancellation")
    return mapper(event)
