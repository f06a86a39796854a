"""The webhook endpoints over HTTP on the real database and broker: auth, errors, mapping, duplicates, order."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.intake.models import SubscriptionState, outbox
from shared.signing import stripe_signature_header
from tests.conftest import STRIPE_SECRET, eventually
from tests.helpers import signed, stripe_event, stripe_subscription
from tests.intake_helpers import (
    basic_auth,
    chargebee_event,
    chargebee_subscription,
    delivery_row,
    intake_settings,
    post_chargebee,
    post_stripe,
    running_intake,
    staged_events,
)

Intake = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
async def intake(database_url: str, amqp_url: str) -> AsyncIterator[Intake]:
    async with running_intake(intake_settings(database_url=database_url, amqp_url=amqp_url)) as running:
        yield running


def webhooks_counted(source: str, event_type: str, outcome: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "brink_webhooks_total", {"source": source, "event_type": event_type, "outcome": outcome}
        )
        or 0.0
    )


def scheduled_then_removed() -> tuple[dict, dict, dict]:
    """A subscription, the update that scheduled its cancellation, and the later one that removed it."""
    now = int(time.time())
    scheduled = stripe_subscription(status="active", cancel_at_period_end=True, ended_at=None)
    removed = dict(scheduled, cancel_at_period_end=False, canceled_at=None)
    first = stripe_event(
        "customer.subscription.updated",
        scheduled,
        created=now - 60,
        previous_attributes={"cancel_at_period_end": False},
    )
    second = stripe_event(
        "customer.subscription.updated", removed, created=now, previous_attributes={"cancel_at_period_end": True}
    )
    return scheduled, first, second


# --- Stripe -------------------------------------------------------------------------------------------------


async def test_stripe_deleted_is_accepted_staged_and_counted(intake: Intake) -> None:
    app, client = intake
    subscription = stripe_subscription(feedback="too_expensive")
    event = stripe_event("customer.subscription.deleted", subscription)
    before = webhooks_counted("stripe", "customer.subscription.deleted", "accepted")

    response = await post_stripe(client, event)

    assert response.status_code == 200 and response.json() == {"outcome": "accepted", "event_id": event["id"]}
    [staged] = await staged_events(app, f"stripe:{subscription['id']}")
    assert staged["type"] == "cancellation.received" and staged["data"]["feedback"] == "too_expensive"
    assert staged["correlation_id"] == response.headers["x-correlation-id"]
    assert webhooks_counted("stripe", "customer.subscription.deleted", "accepted") == before + 1


async def test_a_correlation_id_that_could_not_travel_is_replaced_and_the_event_is_published(intake: Intake) -> None:
    # 128 bytes above 0x7f were kept as 128 latin-1 characters: 256 bytes of UTF-8, more than an AMQP property
    # holds, so the event could never leave the outbox (and failed the relay's every cycle).
    app, client = intake
    subscription = stripe_subscription(feedback="too_expensive")
    body, headers = signed(stripe_event("customer.subscription.deleted", subscription), STRIPE_SECRET)

    response = await client.post(
        "/webhooks/stripe", content=body, headers={**headers, "x-correlation-id": b"\xe9" * 128}
    )

    assert response.status_code == 200
    [staged] = await staged_events(app, f"stripe:{subscription['id']}")
    assert staged["correlation_id"] == response.headers["x-correlation-id"]

    async def published() -> bool:
        async with app.state.runtime.sessions() as session:
            sent = await session.scalar(select(outbox.c.published_at).where(outbox.c.event_id == staged["id"]))
        return sent is not None

    await eventually(published)


async def test_stripe_scheduled_then_removed_stages_received_then_withdrawn(intake: Intake) -> None:
    app, client = intake
    scheduled, first, second = scheduled_then_removed()

    assert (await post_stripe(client, first)).json()["outcome"] == "accepted"
    assert (await post_stripe(client, second)).json()["outcome"] == "accepted"

    staged = await staged_events(app, f"stripe:{scheduled['id']}")
    assert [(e["type"], e["data"].get("scheduled")) for e in staged] == [
        ("cancellation.received", True),
        ("cancellation.withdrawn", None),
    ]


async def test_stripe_event_about_something_else_is_200_and_recorded_as_ignored(intake: Intake) -> None:
    app, client = intake
    event = stripe_event("customer.created", {"id": "cus_x", "object": "customer"})
    before = webhooks_counted("stripe", "customer.created", "ignored")
    response = await post_stripe(client, event)
    assert response.status_code == 200
    assert webhooks_counted("stripe", "customer.created", "ignored") == before + 1
    assert response.json()["outcome"] == "ignored" and "not about a cancellation" in response.json()["reason"]
    row = await delivery_row(app, "stripe", event["id"])
    assert row is not None and row.outcome == "ignored" and row.payload == event


@pytest.mark.parametrize(
    "secret, age, problem",
    [
        ("whsec_wrong", 0, "matches no configured secret"),
        (STRIPE_SECRET, 301, "older than the 300 s tolerance"),
    ],
)
async def test_stripe_forgeries_and_replays_are_401_and_leave_nothing(
    intake: Intake, secret: str, age: int, problem: str
) -> None:
    app, client = intake
    event = stripe_event("customer.subscription.deleted", stripe_subscription())
    body, headers = signed(event, secret, timestamp=int(time.time()) - age)
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 401 and problem in response.json()["detail"]
    assert await delivery_row(app, "stripe", event["id"]) is None


async def test_stripe_missing_signature_is_401(intake: Intake) -> None:
    _, client = intake
    response = await client.post("/webhooks/stripe", content=b"{}")
    assert response.status_code == 401 and "missing" in response.json()["detail"]


async def test_two_secrets_configured_while_rotating_both_verify(database_url: str, amqp_url: str) -> None:
    settings = intake_settings(
        database_url=database_url,
        amqp_url=amqp_url,
        stripe_webhook_secrets=["whsec_old_one_0123456789ab", "whsec_new_one_0123456789ab"],
    )
    async with running_intake(settings) as (_, client):
        for secret in ("whsec_old_one_0123456789ab", "whsec_new_one_0123456789ab"):
            response = await post_stripe(client, stripe_event("customer.created", {"id": "c"}), secret=secret)
            assert response.status_code == 200, response.text
        assert (await post_stripe(client, stripe_event("customer.created", {"id": "c"}), "whsec_x")).status_code == 401
        # Stripe's own header while it rotates: one v1 per active secret, plus a fake v0 to be ignored.
        body = json.dumps(stripe_event("customer.created", {"id": "c"})).encode()
        header = stripe_signature_header(["whsec_unknown", "whsec_new_one_0123456789ab"], body) + ",v0=" + "0" * 64
        response = await client.post("/webhooks/stripe", content=body, headers={"Stripe-Signature": header})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"type": "customer.subscription.deleted"}', "string id and type"),
        (json.dumps({"id": "evt_" + "x" * 300, "type": "customer.created"}).encode(), "too long"),
        (
            json.dumps(stripe_event("customer.subscription.deleted", {"id": "sub_1"})).encode(),
            "missing or has a bad field",
        ),
    ],
)
async def test_a_validly_signed_bad_body_is_400_with_the_reason(intake: Intake, body: bytes, problem: str) -> None:
    _, client = intake
    _, headers = signed(body, STRIPE_SECRET)
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 400 and problem in response.json()["detail"]


async def test_a_body_over_one_mebibyte_is_413(intake: Intake) -> None:
    _, client = intake
    body = b'{"padding": "' + b"x" * (1024 * 1024) + b'"}'
    _, headers = signed(body, STRIPE_SECRET)
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 413 and "larger than the limit" in response.json()["detail"]
    chargebee = await client.post("/webhooks/chargebee", content=body, headers=basic_auth())
    assert chargebee.status_code == 413


# --- Chargebee ----------------------------------------------------------------------------------------------


async def test_chargebee_cancelled_is_answered_exactly_200_and_staged(intake: Intake) -> None:
    app, client = intake
    subscription = chargebee_subscription(cancel_reason="not_paid", cancel_reason_code="Unpaid")
    event = chargebee_event("subscription_cancelled", subscription, source="scheduled_job")
    before = webhooks_counted("chargebee", "subscription_cancelled", "accepted")

    response = await post_chargebee(client, event)

    assert response.status_code == 200 and response.json() == {"outcome": "accepted", "event_id": event["id"]}
    [staged] = await staged_events(app, f"chargebee:{subscription['id']}")
    assert staged["data"]["billing_reason"] == "not_paid" and staged["data"]["feedback"] == "Unpaid"
    assert staged["data"]["mrr"] == {"amount_minor": 10000, "currency": "usd"}
    assert webhooks_counted("chargebee", "subscription_cancelled", "accepted") == before + 1


@pytest.mark.parametrize(
    "headers, problem",
    [
        ({}, "missing"),
        (basic_auth(password="wrong"), "wrong"),
        (basic_auth(username="someone"), "wrong"),
        ({"Authorization": "Bearer abc"}, "Basic scheme"),
    ],
)
async def test_chargebee_without_the_right_credentials_is_401(intake: Intake, headers: dict, problem: str) -> None:
    app, client = intake
    event = chargebee_event("subscription_cancelled", chargebee_subscription())
    before = webhooks_counted("chargebee", "unknown", "rejected")
    response = await client.post("/webhooks/chargebee", content=json.dumps(event).encode(), headers=headers)
    assert response.status_code == 401 and problem in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Basic")
    assert await delivery_row(app, "chargebee", event["id"]) is None
    assert webhooks_counted("chargebee", "unknown", "rejected") == before + 1


async def test_chargebee_refuses_everything_when_no_credentials_are_configured(
    database_url: str, amqp_url: str
) -> None:
    settings = intake_settings(
        database_url=database_url, amqp_url=amqp_url, chargebee_webhook_username=None, chargebee_webhook_password=None
    )
    async with running_intake(settings) as (_, client):
        event = chargebee_event("subscription_cancelled", chargebee_subscription())
        response = await post_chargebee(client, event)
    # Refused as wrong credentials: the answer does not tell a stranger that none are configured.
    assert response.status_code == 401 and response.json()["detail"] == "Chargebee webhook credentials are wrong"


async def test_chargebee_bad_json_with_good_credentials_is_400(intake: Intake) -> None:
    _, client = intake
    response = await client.post("/webhooks/chargebee", content=b"{oops", headers=basic_auth())
    assert response.status_code == 400 and "not valid JSON" in response.json()["detail"]


# --- duplicates and order -----------------------------------------------------------------------------------


async def test_a_duplicate_is_200_and_stages_nothing_more(intake: Intake) -> None:
    app, client = intake
    subscription = chargebee_subscription()
    event = chargebee_event("subscription_cancelled", subscription)
    before = webhooks_counted("chargebee", "subscription_cancelled", "duplicate")
    assert (await post_chargebee(client, event)).json()["outcome"] == "accepted"
    again = await post_chargebee(client, event)
    assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert len(await staged_events(app, f"chargebee:{subscription['id']}")) == 1
    assert webhooks_counted("chargebee", "subscription_cancelled", "duplicate") == before + 1


async def test_stripe_late_older_cancellation_never_undoes_the_newer_withdrawal(intake: Intake) -> None:
    app, client = intake
    scheduled, older, newer = scheduled_then_removed()

    before = webhooks_counted("stripe", "customer.subscription.updated", "superseded")
    assert (await post_stripe(client, newer)).json()["outcome"] == "accepted"
    late = await post_stripe(client, older)

    assert late.status_code == 200 and late.json()["outcome"] == "superseded"
    assert "newer event" in late.json()["reason"]
    assert webhooks_counted("stripe", "customer.subscription.updated", "superseded") == before + 1
    assert [e["type"] for e in await staged_events(app, f"stripe:{scheduled['id']}")] == ["cancellation.withdrawn"]
    row = await delivery_row(app, "stripe", older["id"])
    assert row is not None and row.outcome == "superseded"


async def test_chargebee_orders_by_resource_version_not_by_arrival(intake: Intake) -> None:
    app, client = intake
    base = int(time.time()) * 1000
    scheduled = chargebee_subscription(status="non_renewing", resource_version=base + 2)
    older = chargebee_event(
        "subscription_scheduled_cancellation_removed", dict(scheduled, status="active", resource_version=base + 1)
    )
    newer = chargebee_event("subscription_cancellation_scheduled", scheduled)

    assert (await post_chargebee(client, newer)).json()["outcome"] == "accepted"
    late = await post_chargebee(client, older)

    assert late.status_code == 200 and late.json()["outcome"] == "superseded"
    staged = await staged_events(app, f"chargebee:{scheduled['id']}")
    assert [e["type"] for e in staged] == ["cancellation.received"]


async def test_a_repeat_of_an_older_delivery_leaves_the_newest_state_alone(intake: Intake) -> None:
    app, client = intake
    scheduled, older, newer = scheduled_then_removed()
    assert (await post_stripe(client, older)).json()["outcome"] == "accepted"
    assert (await post_stripe(client, newer)).json()["outcome"] == "accepted"

    assert (await post_stripe(client, older)).json()["outcome"] == "duplicate"
    # Had the repeat counted, this later copy of the newer event's state would now look superseded or staged twice.
    third = dict(newer, id=newer["id"] + "_again")
    assert (await post_stripe(client, third)).json()["outcome"] == "accepted"
    assert [e["type"] for e in await staged_events(app, f"stripe:{scheduled['id']}")] == [
        "cancellation.received",
        "cancellation.withdrawn",
        "cancellation.withdrawn",
    ]
    async with app.state.runtime.sessions() as session:
        state = await session.scalar(
            select(SubscriptionState).where(SubscriptionState.subscription_id == scheduled["id"])
        )
    assert state is not None and state.state == "active"


async def test_a_nul_character_in_the_event_is_replaced_and_the_cancellation_kept(intake: Intake) -> None:
    app, client = intake
    subscription = stripe_subscription(comment="too\u0000 expensive")
    event = stripe_event("customer.subscription.deleted", subscription)
    response = await post_stripe(client, event)
    assert response.status_code == 200 and response.json()["outcome"] == "accepted", response.text
    [staged] = await staged_events(app, f"stripe:{subscription['id']}")
    assert staged["data"]["comment"] == "too\ufffd expensive"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
async def test_the_stored_event_is_the_event_as_sent_whatever_its_encoding(intake: Intake, encoding: str) -> None:
    app, client = intake
    subscription = stripe_subscription(comment="trop cher, 東京 ✓")
    event = stripe_event("customer.subscription.deleted", subscription)
    event["data"]["object"]["metadata"] = {"ratio": 1.10, "big": 12345678901234567890, "nested": [{"a": None}]}
    body = json.dumps(event, ensure_ascii=False).encode(encoding)
    headers = {"Stripe-Signature": stripe_signature_header([STRIPE_SECRET], body), "Content-Type": "application/json"}

    response = await client.post("/webhooks/stripe", content=body, headers=headers)

    assert response.status_code == 200 and response.json()["outcome"] == "accepted", response.text
    row = await delivery_row(app, "stripe", event["id"])
    assert row is not None and row.payload == event
