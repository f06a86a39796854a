"""Intake's one way in: every cancellation signal (webhook, internal report, reconciliation) is recorded here.

The rules a delivery obeys are decided once, in ``prepare``: what it publishes, which subscription state it
claims at which version, and the envelope it stages. A ``Deliveries`` store then applies them atomically:
the delivery is stored once per (source, event id) (a repeat is a ``duplicate``), an event older than the
subscription's known state is ``superseded`` and publishes nothing, anything else stages its envelope in the
outbox. Two stores implement that interface: ``PortableDeliveries`` (SQLAlchemy, any database) and
``PostgresDeliveries`` (one statement per group of deliveries); a test keeps their rows identical.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

from pydantic import ValidationError

from services.intake.chargebee_mapping import map_chargebee_event
from services.intake.mapping_common import Ignored
from services.intake.stripe_mapping import map_stripe_event
from shared import metrics
from shared.db import utcnow
from shared.events import CancellationReceived, CancellationWithdrawn, Envelope, InvoicePaid, Payload
from shared.logs import get_logger

Outcome = Literal["accepted", "duplicate", "ignored", "superseded"]
ReceivedVia = Literal["webhook", "api", "reconciliation"]
SUPERSEDED_REASON = "a newer event for this subscription was already received"
# A paid invoice ends a payment failure: over one it is published as a withdrawal. Over a withdrawn cancellation
# (state "active", older than the payment) it is published as ``invoice.paid``, the first invoice paid since,
# which verifies a pending save; the state becomes "invoice_paid" (its version kept, so a cancellation between
# the two is still newer), and later payments publish nothing. Any other payment is an ordinary one, recorded as
# ignored: no state written, nothing published.
PAYMENT_RECOVERED = "payment_recovered"
INVOICE_PAID = "invoice_paid"
NO_PAYMENT_FAILURE_REASON = (
    "a payment, but the subscription's last known state is neither a payment failure nor a withdrawn "
    "cancellation awaiting its next invoice (an ordinary payment)"
)

# The delivery table's column sizes.
MAX_ID_LENGTH = 255
MAX_TYPE_LENGTH = 128

log = get_logger("services.intake.service")


class IntakeError(Exception):
    """A use case refused its input; the edge turns it into an answer (a 400, an ignored record)."""


class UnreadableEvent(IntakeError):
    """The vendor event lacks an id or type, or a field its mapping needs is missing or malformed."""

    def __init__(self, reason: str, *, event_id: str | None = None, event_type: str = "unknown") -> None:
        super().__init__(reason)
        self.event_id = event_id
        self.event_type = event_type


@dataclass(frozen=True)
class Delivery:
    source: str
    external_id: str
    event_type: str
    payload: dict[str, Any]
    correlation_id: str
    # The body exactly as received, when the database can store it as is: one JSON encoding less per webhook.
    payload_json: str | None = None
    received_via: ReceivedVia = "webhook"


class PreparedDelivery(NamedTuple):
    """A delivery with every rule about it decided: the values both stores write (in the PostgreSQL
    statement's column order)."""

    source: str
    external_id: str
    event_type: str
    ignored: str | None  # "ignored" when the event is not about a cancellation
    reason: str | None
    published_type: str | None
    correlation_id: str
    payload: str
    received_at: datetime
    subscription_id: str | None
    state: str | None
    state_version: int | None
    envelope_id: str | None
    body: str | None
    received_via: str
    # A payment's other envelope (``invoice.paid``), staged instead of the withdrawal when it follows a withdrawal.
    paid_body: str | None


def state_after(event: Payload) -> str:
    """The subscription state an event leaves behind (``payment_recovered``: active, if it was payment_failed)."""
    if isinstance(event, CancellationReceived):
        if event.billing_reason == "payment_failed" and not event.scheduled:
            return "payment_failed"
        return "scheduled" if event.scheduled else "cancelled"
    if isinstance(event, CancellationWithdrawn) and event.reason == PAYMENT_RECOVERED:
        return PAYMENT_RECOVERED
    return "active"


def envelope_id_for(source: str, external_id: str) -> uuid.UUID:
    """One envelope id per delivery key: the same delivery always stages the same envelope."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"brink-intake:{source}:{external_id}")


def prepare(
    delivery: Delivery, event: Payload | None, ignored_reason: str | None, *, received_at: datetime
) -> PreparedDelivery:
    """Decide what the delivery publishes and which subscription state it claims."""
    subscription_id = state = version = envelope_id = body = paid_body = None
    if event is not None:
        subscription_id = getattr(event, "subscription_id", None) or None
        if subscription_id is not None:
            state, version = state_after(event), event.state_version  # type: ignore[attr-defined]
        envelope_id = envelope_id_for(delivery.source, delivery.external_id)
        body = _envelope_json(event, delivery, envelope_id, received_at)
        if state == PAYMENT_RECOVERED:
            paid = InvoicePaid(**event.model_dump(exclude={"reason"}))
            paid_body = _envelope_json(paid, delivery, envelope_id, received_at)
    return PreparedDelivery(
        delivery.source,
        delivery.external_id,
        delivery.event_type,
        "ignored" if event is None else None,
        ignored_reason if event is None else None,
        event.TYPE if event is not None else None,
        delivery.correlation_id,
        delivery.payload_json or json.dumps(delivery.payload, separators=(",", ":")),
        received_at,
        subscription_id,
        state,
        version,
        None if envelope_id is None else str(envelope_id),
        body,
        delivery.received_via,
        paid_body,
    )


def _envelope_json(event: Payload, delivery: Delivery, envelope_id: uuid.UUID, received_at: datetime) -> str:
    # Built from values that are valid already (a validated payload, its own dump, an aware time), so not validated
    # again: Envelope.wrap checks the dumped payload field by field and a copy with the id costs a third model.
    envelope = Envelope.model_construct(
        id=envelope_id,
        type=event.TYPE,
        version=event.VERSION,
        occurred_at=received_at,
        correlation_id=delivery.correlation_id,
        source=f"intake.{delivery.source}",
        data=event.model_dump(mode="json"),
    )
    return envelope.model_dump_json()


class Deliveries(Protocol):
    """Where deliveries are stored: the delivery, its subscription's newest state and its outbox row, at once."""

    async def record(self, row: PreparedDelivery) -> Outcome:
        """Store ``row`` atomically and say what became of it."""
        ...


@dataclass(frozen=True)
class Recorded:
    outcome: Outcome
    event_id: str
    event_type: str
    reason: str | None  # why it was ignored or superseded


async def record_event(
    deliveries: Deliveries,
    *,
    delivery: Delivery,
    event: Payload | None,
    ignored_reason: str | None = None,
    after_accepted: Callable[[], None] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Recorded:
    """Record one delivery once; the one use case behind webhooks, reports and reconciliation."""
    outcome = await deliveries.record(prepare(delivery, event, ignored_reason, received_at=clock()))
    if outcome == "accepted" and after_accepted is not None:
        after_accepted()
    if delivery.received_via != "reconciliation":  # the reconciler counts what it reads in its own metrics
        metrics.WEBHOOKS.labels(source=delivery.source, event_type=delivery.event_type, outcome=outcome).inc()
    ignored_because = ignored_reason if event is None else NO_PAYMENT_FAILURE_REASON
    reason = {"ignored": ignored_because, "superseded": SUPERSEDED_REASON}.get(outcome)
    log.info(
        f"intake.webhook.{outcome}",
        source=delivery.source,
        external_id=delivery.external_id,
        event_type=delivery.event_type,
        received_via=delivery.received_via,
        reason=reason,
    )
    return Recorded(outcome, delivery.external_id, delivery.event_type, reason)


# Per vendor: where its events keep their type, and the mapping to Brink events.
VENDOR_MAPPINGS: dict[str, tuple[str, Callable[[dict[str, Any]], Payload]]] = {
    "stripe": ("type", map_stripe_event),
    "chargebee": ("event_type", map_chargebee_event),
}


def identify(source: str, event: dict[str, Any]) -> tuple[str, str]:
    """The vendor event's id and type, which must be strings that fit the delivery table."""
    type_key, _ = VENDOR_MAPPINGS[source]
    event_id, event_type = event.get("id"), event.get(type_key)
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not event_id or not event_type:
        raise UnreadableEvent(f"a {source.capitalize()} event needs a string id and {type_key}")
    if len(event_id) > MAX_ID_LENGTH or len(event_type) > MAX_TYPE_LENGTH:
        raise UnreadableEvent(f"the event id or {type_key} is too long")
    return event_id, event_type


def map_vendor_event(source: str, event: dict[str, Any], event_type: str) -> tuple[Payload | None, str | None]:
    """The Brink event for a vendor event, or None with the reason it is ignored."""
    _, mapper = VENDOR_MAPPINGS[source]
    try:
        return mapper(event), None
    except Ignored as ignored:
        return None, str(ignored)
    except ValidationError as invalid:  # a value the event contract (and so the tables) cannot hold
        first = invalid.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise UnreadableEvent(
            f"the {event_type} event has a value Brink cannot hold: {field}: {first['msg']}",
            event_id=event.get("id") if isinstance(event.get("id"), str) else None,
            event_type=event_type,
        ) from None
    # AttributeError: a list where an object belongs; OverflowError: a number too large for arithmetic.
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as problem:
        raise UnreadableEvent(
            f"the {event_type} event is missing or has a bad field: {problem}",
            event_id=event.get("id") if isinstance(event.get("id"), str) else None,
            event_type=event_type,
        ) from None


async def record_vendor_event(
    deliveries: Deliveries,
    *,
    source: str,
    event: dict[str, Any],
    correlation_id: str,
    received_via: ReceivedVia,
    payload_json: str | None = None,
    after_accepted: Callable[[], None] | None = None,
    unreadable_is_ignored: bool = False,
    clock: Callable[[], datetime] = utcnow,
) -> Recorded:
    """Map a verified vendor event and record it once; ``UnreadableEvent`` unless ``unreadable_is_ignored``,
    which records an event the mapping cannot read as ignored with the reason (reconciliation has nobody to
    answer 400 to)."""
    event_id, event_type = identify(source, event)
    try:
        mapped, reason = map_vendor_event(source, event, event_type)
    except UnreadableEvent as unreadable:
        if not unreadable_is_ignored:
            raise
        mapped, reason = None, str(unreadable)
    delivery = Delivery(
        source=source,
        external_id=event_id,
        event_type=event_type,
        payload=event,
        correlation_id=correlation_id,
        payload_json=payload_json,
        received_via=received_via,
    )
    return await record_event(
        deliveries, delivery=delivery, event=mapped, ignored_reason=reason, after_accepted=after_accepted, clock=clock
    )
