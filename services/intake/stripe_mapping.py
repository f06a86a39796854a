"""Stripe events to Brink events: plain functions over the parsed webhook, no I/O."""

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
    MAX_TEXT_LENGTH,
    CancellationReceived,
    CancellationWithdrawn,
    Initiator,
    Payload,
    PlanLine,
    clip,
)

__all__ = ["STRIPE_MAPPED_TYPES", "Ignored", "initiator", "map_stripe_event", "plan_lines"]

# Statuses from which a return to ``active`` means the customer is staying after all.
RESUMED_FROM = {"paused", "unpaid", "past_due"}
INVOLUNTARY_REASONS = {"payment_failed", "payment_disputed"}


def _item_line(item: dict[str, Any]) -> PlanLine:
    price = object_at(item, "price")
    plan = object_at(item, "plan")
    recurring = price.get("recurring") or {}
    unit_amount = price.get("unit_amount", plan.get("amount"))
    return plan_line(
        plan_id=str(price.get("id") or plan.get("id") or "unknown"),
        name=price.get("nickname") or plan.get("nickname") or plan.get("name"),
        quantity=as_int(item.get("quantity"), 1),
        unit_amount=as_int(unit_amount) if unit_amount is not None else None,
        currency=price.get("currency") or plan.get("currency"),
        interval=recurring.get("interval") or plan.get("interval") or "month",
        interval_count=as_int(recurring.get("interval_count") or plan.get("interval_count"), 1),
    )


def plan_lines(subscription: dict[str, Any]) -> list[PlanLine]:
    """Plans with their monthly value, from ``items`` or, in older API versions, the top-level ``plan``."""
    items = (subscription.get("items") or {}).get("data") or []
    if not items and isinstance(subscription.get("plan"), dict):
        items = [{"plan": subscription["plan"], "quantity": subscription.get("quantity") or 1}]
    return [_item_line(item) for item in items]


def _invoice_lines(invoice: dict[str, Any]) -> list[PlanLine]:
    """Recurring lines of an invoice (one-off invoice items carry no MRR)."""
    lines = (invoice.get("lines") or {}).get("data") or []
    recurring = [
        line
        for line in lines
        if line.get("type") == "subscription"
        or (isinstance(line.get("price"), dict) and line["price"].get("recurring"))
    ]
    return [
        _item_line(line)
        for line in recurring
        if isinstance(line.get("price"), dict) or isinstance(line.get("plan"), dict)
    ]


def initiator(event: dict[str, Any]) -> Initiator:
    """Stripe leaves ``request.id`` null for changes it made itself (dunning, schedules)."""
    request = event.get("request")
    if isinstance(request, dict):
        return "customer" if request.get("id") else "billing_system"
    if isinstance(request, str) and request:
        return "customer"
    return "unknown"


def request_id(event: dict[str, Any]) -> str | None:
    """The API request that made the change, when a person (or their integration) made it."""
    request = event.get("request")
    if isinstance(request, dict):
        return request.get("id") or None
    return request if isinstance(request, str) and request else None


def _customer(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    customer = obj.get("customer")
    if isinstance(customer, dict):
        return str(customer["id"]), customer
    if not isinstance(customer, str) or not customer:
        raise ValueError("the object has no customer")
    return customer, {}


def _common(event: dict[str, Any], obj: dict[str, Any], subscription_id: str) -> dict[str, Any]:
    """Fields every Brink event from Stripe carries."""
    customer_id, customer = _customer(obj)
    metadata = customer.get("metadata") or obj.get("metadata")
    return {
        "cancellation_id": f"stripe:{subscription_id}",
        "account_id": account_id_for("stripe", customer_id, metadata),
        "source": "stripe",
        "source_event_id": event["id"],
        "source_event_type": event["type"],
        "customer_id": customer_id,
        "subscription_id": subscription_id,
        "state_version": as_int(event.get("created")),
    }


def _livemode(event: dict[str, Any], obj: dict[str, Any]) -> bool:
    return bool(event.get("livemode", obj.get("livemode", False)))


def _received(
    event: dict[str, Any], subscription: dict[str, Any], *, scheduled: bool, effective: Any
) -> CancellationReceived:
    details = subscription.get("cancellation_details") or {}
    _, customer = _customer(subscription)
    lines = plan_lines(subscription)
    billing_reason = details.get("reason")
    return CancellationReceived(
        **_common(event, subscription, str(subscription["id"])),
        customer_email=customer.get("email"),
        customer_name=clip(customer.get("name"), MAX_NAME_LENGTH),
        # The customer's owner wins over the subscription's (the customer is only there when expanded).
        account_owner=account_owner_in(customer.get("metadata"), subscription.get("metadata")),
        plans=lines,
        mrr=total_mrr(lines),
        billing_reason=billing_reason,
        feedback=details.get("feedback"),
        comment=clip(details.get("comment"), MAX_TEXT_LENGTH),
        initiated_by=initiator(event),
        initiated_by_detail=request_id(event),
        involuntary=billing_reason in INVOLUNTARY_REASONS,
        scheduled=scheduled,
        effective_at=timestamp(effective),
        livemode=_livemode(event, subscription),
    )


def map_subscription_deleted(event: dict[str, Any]) -> CancellationReceived:
    """The subscription ended now."""
    subscription = event["data"]["object"]
    effective = subscription.get("ended_at") or subscription.get("canceled_at") or event.get("created")
    return _received(event, subscription, scheduled=False, effective=effective)


def _is_scheduled(cancel_at_period_end: Any, cancel_at: Any) -> bool:
    return cancel_at_period_end is True or cancel_at is not None


def _period_end(subscription: dict[str, Any]) -> Any:
    """``current_period_end``, which newer API versions moved onto the items."""
    if subscription.get("current_period_end") is not None:
        return subscription["current_period_end"]
    ends = [item.get("current_period_end") for item in (subscription.get("items") or {}).get("data") or []]
    return max((end for end in ends if isinstance(end, int)), default=None)


def map_subscription_updated(event: dict[str, Any]) -> Payload:
    """Scheduled cancellation (or its date moved) → received; scheduled cancellation removed or resumed → withdrawn."""
    subscription = event["data"]["object"]
    previous = event["data"].get("previous_attributes") or {}
    now_scheduled = _is_scheduled(subscription.get("cancel_at_period_end"), subscription.get("cancel_at"))
    was_scheduled = _is_scheduled(
        previous.get("cancel_at_period_end", subscription.get("cancel_at_period_end")),
        previous.get("cancel_at", subscription.get("cancel_at")),
    )
    status = subscription.get("status")
    if now_scheduled and not was_scheduled and status != "canceled":
        effective = subscription.get("cancel_at") or _period_end(subscription)
        return _received(event, subscription, scheduled=True, effective=effective)
    if now_scheduled and was_scheduled and status != "canceled":
        effective = subscription.get("cancel_at") or _period_end(subscription)
        was_at_period_end = previous.get("cancel_at_period_end", subscription.get("cancel_at_period_end"))
        before = previous.get("cancel_at", subscription.get("cancel_at")) or (
            _period_end(subscription) if was_at_period_end else None
        )
        if effective != before:
            # The scheduled date moved (cancel_at changed, or switched to or from the period end).
            return _received(event, subscription, scheduled=True, effective=effective)
    if was_scheduled and not now_scheduled and status != "canceled":
        return CancellationWithdrawn(
            **_common(event, subscription, str(subscription["id"])), reason="scheduled_cancellation_removed"
        )
    if previous.get("status") in RESUMED_FROM and status == "active":
        return CancellationWithdrawn(
            **_common(event, subscription, str(subscription["id"])), reason=f"resumed_from_{previous['status']}"
        )
    changed = ", ".join(sorted(previous)) or "nothing"
    raise Ignored(f"the subscription update changed {changed}, not its cancellation")


def map_subscription_resumed(event: dict[str, Any]) -> CancellationWithdrawn:
    """A paused subscription is billing again."""
    subscription = event["data"]["object"]
    return CancellationWithdrawn(**_common(event, subscription, str(subscription["id"])), reason="resumed")


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    subscription = invoice.get("subscription")
    if subscription is None:
        # API 2025-03-31 and later moved it under parent.subscription_details.
        details = (invoice.get("parent") or {}).get("subscription_details") or {}
        subscription = details.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return str(subscription) if subscription else None


def map_invoice_payment_failed(event: dict[str, Any]) -> CancellationReceived:
    """The last retry failed (no next attempt): an involuntary cancellation risk."""
    invoice = event["data"]["object"]
    if invoice.get("next_payment_attempt") is not None:
        raise Ignored("Stripe will retry the payment; not yet a cancellation risk")
    subscription_id = _invoice_subscription(invoice)
    if subscription_id is None:
        raise Ignored("the failed invoice belongs to no subscription")
    lines = _invoice_lines(invoice)
    return CancellationReceived(
        **_common(event, invoice, subscription_id),
        customer_email=invoice.get("customer_email"),
        customer_name=clip(invoice.get("customer_name"), MAX_NAME_LENGTH),
        account_owner=account_owner_in(
            _customer(invoice)[1].get("metadata"),
            (invoice.get("subscription_details") or {}).get("metadata"),
            invoice.get("metadata"),
        ),
        plans=lines,
        mrr=total_mrr(lines),
        billing_reason="payment_failed",
        initiated_by="billing_system",
        involuntary=True,
        scheduled=False,
        effective_at=timestamp(event.get("created")),
        livemode=_livemode(event, invoice),
    )


def map_invoice_paid(event: dict[str, Any]) -> CancellationWithdrawn:
    """A subscription's invoice paid: ends a payment failure (intake publishes it only over one)."""
    invoice = event["data"]["object"]
    subscription_id = _invoice_subscription(invoice)
    if subscription_id is None:
        raise Ignored("the paid invoice belongs to no subscription")
    return CancellationWithdrawn(**_common(event, invoice, subscription_id), reason="payment_recovered")


MAPPERS: dict[str, Callable[[dict[str, Any]], Payload]] = {
    "customer.subscription.deleted": map_subscription_deleted,
    "customer.subscription.updated": map_subscription_updated,
    "customer.subscription.resumed": map_subscription_resumed,
    "invoice.payment_failed": map_invoice_payment_failed,
    "invoice.paid": map_invoice_paid,
    "invoice.payment_succeeded": map_invoice_paid,
}
STRIPE_MAPPED_TYPES = frozenset(MAPPERS)


def map_stripe_event(event: dict[str, Any]) -> Payload:
    """The Brink event for a Stripe event, or ``Ignored`` when it is not about a cancellation."""
    mapper = MAPPERS.get(event.get("type", ""))
    if mapper is None:
        raise Ignored(f"event type {event.get('type')!r} is not about a cancellation")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise ValueError("data.object is missing")
    return mapper(event)
