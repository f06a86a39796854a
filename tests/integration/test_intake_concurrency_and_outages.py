"""Concurrent duplicates on PostgreSQL publish once; an unreachable database is a 503; OpenAPI documents errors."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from sqlalchemy import func, select

from services.intake.app import build_app
from services.intake.models import SubscriptionState
from tests.conftest import STRIPE_SECRET
from tests.helpers import signed, stripe_event, stripe_subscription
from tests.intake_helpers import (
    BEARER,
    basic_auth,
    chargebee_event,
    chargebee_subscription,
    intake_settings,
    running_intake,
    staged_events,
)

CLOSED_PORT_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:9/brink"


async def test_concurrent_duplicates_on_postgres_stage_exactly_one_event(postgres_url: str, amqp_url: str) -> None:
    async with running_intake(intake_settings(database_url=postgres_url, amqp_url=amqp_url)) as (app, client):
        subscription = stripe_subscription()
        body, headers = signed(stripe_event("customer.subscription.deleted", subscription), STRIPE_SECRET)

        responses = await asyncio.gather(
            *(client.post("/webhooks/stripe", content=body, headers=headers) for _ in range(12))
        )

        outcomes = sorted(response.json()["outcome"] for response in responses)
        assert all(response.status_code == 200 for response in responses)
        assert outcomes == ["accepted"] + ["duplicate"] * 11
        assert len(await staged_events(app, f"stripe:{subscription['id']}")) == 1


async def test_concurrent_events_of_one_subscription_keep_the_newest_state(postgres_url: str, amqp_url: str) -> None:
    async with running_intake(intake_settings(database_url=postgres_url, amqp_url=amqp_url)) as (app, client):
        base = int(time.time()) * 1000
        subscription = chargebee_subscription(status="non_renewing")
        events = [
            chargebee_event(
                "subscription_cancellation_scheduled" if version % 2 else "subscription_scheduled_cancellation_removed",
                dict(subscription, resource_version=base + version),
            )
            for version in range(1, 11)
        ]
        responses = await asyncio.gather(
            *(
                client.post("/webhooks/chargebee", content=json.dumps(event).encode(), headers=basic_auth())
                for event in events
            )
        )
        assert all(response.status_code == 200 for response in responses)
        async with app.state.runtime.sessions() as session:
            state = await session.scalar(
                select(SubscriptionState).where(SubscriptionState.subscription_id == subscription["id"])
            )
            rows = await session.scalar(
                select(func.count())
                .select_from(SubscriptionState)
                .where(SubscriptionState.subscription_id == subscription["id"])
            )
        # The newest (version 10, a removal) wins whatever order the ten requests were served in.
        assert rows == 1 and state is not None
        assert (state.state_version, state.state) == (base + 10, "active")
        staged = await staged_events(app, f"chargebee:{subscription['id']}")
        assert staged[-1]["data"]["state_version"] == base + 10
        accepted = [r for r in responses if r.json()["outcome"] == "accepted"]
        assert len(staged) == len(accepted)


async def test_an_unreachable_database_is_503_so_the_sender_retries(amqp_url: str) -> None:
    settings = intake_settings(database_url=CLOSED_PORT_DATABASE, amqp_url=amqp_url)
    async with running_intake(settings) as (_, client):
        body, headers = signed(stripe_event("customer.subscription.deleted", stripe_subscription()), STRIPE_SECRET)
        stripe = await client.post("/webhooks/stripe", content=body, headers=headers)
        chargebee = await client.post(
            "/webhooks/chargebee",
            headers=basic_auth(),
            content=json.dumps(chargebee_event("subscription_cancelled", chargebee_subscription())).encode(),
        )
        report = await client.post("/v1/cancellations", headers=BEARER, json={"customer_id": "c1"})
    for response in (stripe, chargebee, report):
        assert response.status_code == 503, response.text
        assert response.json() == {"detail": "the database is unavailable; retry later"}


@pytest.mark.parametrize(
    "path, codes",
    [
        ("/webhooks/stripe", {"200", "400", "401", "413", "503"}),
        ("/webhooks/chargebee", {"200", "400", "401", "413", "503"}),
        ("/v1/cancellations", {"202", "401", "413", "422", "503"}),
    ],
)
async def test_openapi_documents_every_route_with_its_errors(path: str, codes: set[str]) -> None:
    app = build_app(intake_settings(database_url="sqlite+aiosqlite:///unused.db", amqp_url="amqp://unused/"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
        spec = (await client.get("/openapi.json")).json()
        docs = await client.get("/docs")
    assert docs.status_code == 200
    responses = spec["paths"][path]["post"]["responses"]
    assert codes <= set(responses)
    for code in codes - {"200", "202"}:
        assert responses[code]["description"], f"{path} {code} has no description"
