"""Stripe events to Brink events: plain functions over the parsed webhook, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.events import CancellationReceived, Money, Payload, PlanLine

# How many of each interval make a month, to normalise recurring prices to MRR.
MONTHS_PER_INTERVAL = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


class Ignored(Exception):
    """The event is genuine but says nothing about a cancellation; it is recorded as ignored."""


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, (int, float)) else None


def account_id_for(source: str, customer_id: str, metadata: dict[str, Any] | None) -> str:
    """``<source>:<customer id>`` unless the billing customer names its own ``account_id``."""
    if metadata and isinstance(metadata.get("account_id"), str) and metadata["account_id"].strip():
        return metadata["account_id"].strip()
    return f"{source}:{customer_id}"


def plan_lines(subscription: dict[str, Any]) -> list[PlanLine]:
    """Plans with their monthly value, from ``items`` or, in older API versions, the top-level ``plan``."""
    items = (subscription.get("items") or {}).get("data") or []
    if not items and subscription.get("plan"):
        items = [{"plan": subscription["plan"], "quantity": subscription.get("quantity") or 1}]
    lines = []
    for item in items:
        price = item.get("price") or {}
        plan = item.get("plan") or {}
        recurring = price.get("recurring") or {}
        unit_amount = price.get("unit_amount", plan.get("amount"))
        interval = recurring.get("interval") or plan.get("interval") or "month"
        interval_count = int(recurring.get("interval_count") or plan.get("interval_count") or 1)
        quantity = int(item.get("quantity") or 1)
        per_month = MONTHS_PER_INTERVAL.get(interval, 1.0) * interval_count
        mrr = round((unit_amount or 0) * quantity / per_month) if unit_amount is not None else 0
        lines.append(PlanLine(
            plan_id=str(price.get("id") or plan.get("id") or "unknown"),
            name=price.get("nickname") or plan.get("nickname") or plan.get("name"),
            quantity=quantity,
            unit_amount_minor=unit_amount,
            currency=(price.get("currency") or plan.get("currency") or "").lower() or None,
            interval=interval,
            interval_count=interval_count,
            mrr_minor=mrr,
        ))
    return lines


def total_mrr(lines: list[PlanLine]) -> Money | None:
    currencies = {line.currency for line in lines if line.currency}
    if len(currencies) != 1:
        return None
    return Money(amount_minor=sum(line.mrr_minor for line in lines), currency=currencies.pop())


def initiator(event: dict[str, Any]) -> str:
    """Stripe leaves ``request.id`` null for changes it made itself (dunning, schedules)."""
    request = event.get("request")
    if isinstance(request, dict):
        return "customer" if request.get("id") else "billing_system"
    if isinstance(request, str) and request:
        return "customer"
    return "unknown"


def map_subscription_deleted(event: dict[str, Any]) -> CancellationReceived:
    subscription = event["data"]["object"]
    details = subscription.get("cancellation_details") or {}
    customer = subscription.get("customer")
    customer_id = customer["id"] if isinstance(customer, dict) else str(customer)
    metadata = customer.get("metadata") if isinstance(customer, dict) else None
    lines = plan_lines(subscription)
    billing_reason = details.get("reason")
    return CancellationReceived(
        cancellation_id=f"stripe:{subscription['id']}",
        account_id=account_id_for("stripe", customer_id, metadata or subscription.get("metadata")),
        source="stripe",
        source_event_id=event["id"],
        source_event_type=event["type"],
        customer_id=customer_id,
        subscription_id=subscription["id"],
        plans=lines,
        mrr=total_mrr(lines),
        billing_reason=billing_reason,
        feedback=details.get("feedback"),
        comment=details.get("comment"),
        initiated_by=initiator(event),
        involuntary=billing_reason in ("payment_failed", "payment_disputed"),
        scheduled=False,
        effective_at=_timestamp(subscription.get("ended_at") or subscription.get("canceled_at") or event.get("created")),
        livemode=bool(event.get("livemode", subscription.get("livemode", False))),
        state_version=int(event.get("created") or 0),
    )


MAPPERS = {"customer.subscription.deleted": map_subscription_deleted}


def map_stripe_event(event: dict[str, Any]) -> Payload:
    """The Brink event for a Stripe event, or ``Ignored`` when it is not about a cancellation."""
    mapper = MAPPERS.get(event.get("type", ""))
    if mapper is None:
        raise Ignored(f"event type {event.get('type')!r} is not about a cancellation")
    return mapper(event)
