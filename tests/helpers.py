"""Builders for webhook bodies in the real vendors' shapes, signing, and counting SQL statements."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.signing import stripe_signature_header


def stripe_subscription(
    *,
    subscription_id: str | None = None,
    customer_id: str | None = None,
    feedback: str | None = "too_expensive",
    comment: str | None = None,
    reason: str = "cancellation_requested",
    unit_amount: int = 4900,
    quantity: int = 10,
    interval: str = "month",
    currency: str = "usd",
    status: str = "canceled",
    **fields: Any,
) -> dict[str, Any]:
    now = int(time.time())
    subscription = {
        "id": subscription_id or f"sub_{uuid.uuid4().hex[:14]}",
        "object": "subscription",
        "customer": customer_id or f"cus_{uuid.uuid4().hex[:14]}",
        "status": status,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": now,
        "ended_at": now,
        "current_period_end": now + 20 * 86400,
        "cancellation_details": {"reason": reason, "feedback": feedback, "comment": comment},
        "livemode": False,
        "metadata": {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{uuid.uuid4().hex[:14]}",
                    "object": "subscription_item",
                    "quantity": quantity,
                    "price": {
                        "id": "price_team",
                        "object": "price",
                        "currency": currency,
                        "unit_amount": unit_amount,
                        "nickname": "Team",
                        "recurring": {"interval": interval, "interval_count": 1},
                    },
                }
            ],
        },
    }
    subscription.update(fields)
    return subscription


def stripe_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    previous_attributes: dict[str, Any] | None = None,
    request_id: str | None = "req_test",
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex[:24]}",
        "object": "event",
        "api_version": "2024-06-20",
        "created": created or int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": request_id, "idempotency_key": None},
        "type": event_type,
        "data": data,
    }


def signed(event: dict[str, Any] | bytes, secret: str, *, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    return body, {
        "Stripe-Signature": stripe_signature_header([secret], body, timestamp),
        "Content-Type": "application/json",
    }


@contextmanager
def counting_statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the engine sends while the block runs (BEGIN and COMMIT are not seen by this hook)."""
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


def outbox_rows(
    count: int, *, event_type: str, created_at: datetime, published_at: datetime | None
) -> list[dict[str, Any]]:
    """Values of ``count`` outbox rows with new event ids, for an insert into any service's outbox."""
    return [
        {
            "event_id": str(uuid.uuid4()),
            "event_type": event_type,
            "correlation_id": event_type,
            "body": "{}",
            "created_at": created_at,
            "published_at": published_at,
        }
        for _ in range(count)
    ]
