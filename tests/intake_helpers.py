"""Intake test helpers: Chargebee events in the real shape, basic auth, an intake app, what it staged."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from services.intake.app import build_app
from services.intake.models import WebhookEvent, outbox
from services.intake.settings import IntakeSettings
from tests.conftest import STRIPE_SECRET, TOKEN, settings_for
from tests.helpers import signed

CHARGEBEE_USER = "brink-chargebee"
CHARGEBEE_PASSWORD = "pa:ss-" + uuid.uuid4().hex  # a ':' inside, as passwords may have
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def basic_auth(username: str = CHARGEBEE_USER, password: str = CHARGEBEE_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def chargebee_subscription(
    *,
    subscription_id: str | None = None,
    customer_id: str | None = None,
    status: str = "cancelled",
    resource_version: int | None = None,
    **fields: Any,
) -> dict[str, Any]:
    now = int(time.time())
    subscription: dict[str, Any] = {
        "id": subscription_id or f"AzZ{uuid.uuid4().hex[:13]}",
        "customer_id": customer_id or f"16C{uuid.uuid4().hex[:13]}",
        "plan_id": "team-monthly",
        "plan_quantity": 5,
        "plan_unit_price": 2000,
        "billing_period": 1,
        "billing_period_unit": "month",
        "plan_free_quantity": 0,
        "status": status,
        "current_term_start": now - 10 * 86400,
        "current_term_end": now + 20 * 86400,
        "created_at": now - 400 * 86400,
        "updated_at": now,
        "has_scheduled_changes": False,
        "resource_version": resource_version or now * 1000,
        "deleted": False,
        "object": "subscription",
        "currency_code": "USD",
        "due_invoices_count": 0,
    }
    if status == "cancelled":
        subscription["cancelled_at"] = now
    subscription.update(fields)
    return subscription


def chargebee_event(
    event_type: str,
    subscription: dict[str, Any],
    *,
    source: str = "admin_console",
    event_id: str | None = None,
    customer: dict[str, Any] | None = None,
    user: str | None = None,
    **content: Any,
) -> dict[str, Any]:
    return {
        "id": event_id or f"ev_{uuid.uuid4().hex[:16]}",
        "occurred_at": int(time.time()),
        "source": source,
        "user": user,
        "object": "event",
        "api_version": "v2",
        "content": {
            "subscription": subscription,
            "customer": customer
            or {
                "id": subscription["customer_id"],
                "email": "ana@example.com",
                "first_name": "Ana",
                "last_name": "Lima",
                "object": "customer",
            },
            **content,
        },
        "event_type": event_type,
        "webhook_status": "not_configured",
    }


def intake_settings(*, database_url: str, amqp_url: str, **overrides: Any) -> IntakeSettings:
    values: dict[str, Any] = {
        "chargebee_webhook_username": CHARGEBEE_USER,
        "chargebee_webhook_password": CHARGEBEE_PASSWORD,
    }
    values.update(overrides)
    return settings_for(IntakeSettings, database_url=database_url, amqp_url=amqp_url, **values)


@asynccontextmanager
async def running_intake(settings: IntakeSettings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The intake app with its lifespan (broker, relay) and a client that talks to it in-process."""
    app = build_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client,
    ):
        yield app, client


async def post_stripe(client: httpx.AsyncClient, event: dict[str, Any], secret: str = STRIPE_SECRET) -> httpx.Response:
    body, headers = signed(event, secret)
    return await client.post("/webhooks/stripe", content=body, headers=headers)


async def post_chargebee(client: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    return await client.post("/webhooks/chargebee", content=json.dumps(event).encode(), headers=basic_auth())


async def staged_events(app: FastAPI, cancellation_id: str) -> list[dict[str, Any]]:
    """Envelopes the intake outbox holds for a cancellation, oldest first."""
    runtime = app.state.runtime
    async with runtime.sessions() as session:
        bodies = (await session.execute(select(outbox.c.body).order_by(outbox.c.id))).scalars().all()
    envelopes = [json.loads(body) for body in bodies]
    return [envelope for envelope in envelopes if envelope["data"].get("cancellation_id") == cancellation_id]


async def delivery_row(app: FastAPI, source: str, external_id: str) -> WebhookEvent | None:
    runtime = app.state.runtime
    async with runtime.sessions() as session:
        return await session.scalar(
            select(WebhookEvent).where(WebhookEvent.source == source, WebhookEvent.external_id == external_id)
        )
