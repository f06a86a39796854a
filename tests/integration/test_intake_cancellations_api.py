"""``POST /v1/cancellations``: bearer token, the same fields as webhooks, retries made safe by Idempotency-Key."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from tests.intake_helpers import BEARER, intake_settings, running_intake, staged_events

Intake = tuple[FastAPI, httpx.AsyncClient]


@pytest.fixture
async def intake(database_url: str, amqp_url: str) -> AsyncIterator[Intake]:
    async with running_intake(intake_settings(database_url=database_url, amqp_url=amqp_url)) as running:
        yield running


def report(**fields) -> dict:
    body = {
        "customer_id": f"cust-{uuid.uuid4().hex[:8]}",
        "subscription_id": f"s-{uuid.uuid4().hex[:8]}",
        "feedback": "switched_service",
        "comment": "Moving to a competitor, told us on a call",
        "initiated_by": "staff",
        "initiated_by_detail": "jane@vendor.example",
        "mrr": {"amount_minor": 12000, "currency": "eur"},
    }
    body.update(fields)
    return body


async def test_a_report_is_staged_with_its_fields(intake: Intake) -> None:
    app, client = intake
    body = report(account_id="acct-99", scheduled=True, effective_at="2026-12-31T00:00:00Z")
    response = await client.post("/v1/cancellations", json=body, headers=BEARER)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["outcome"] == "accepted" and answer["cancellation_id"] == f"api:{body['subscription_id']}"
    [staged] = await staged_events(app, answer["cancellation_id"])
    data = staged["data"]
    assert (data["account_id"], data["feedback"], data["initiated_by"], data["scheduled"]) == (
        "acct-99",
        "switched_service",
        "staff",
        True,
    )
    assert data["mrr"] == {"amount_minor": 12000, "currency": "eur"} and data["source"] == "api"
    assert data["initiated_by_detail"] == "jane@vendor.example"


async def test_a_bearer_token_is_required(intake: Intake) -> None:
    _, client = intake
    assert (await client.post("/v1/cancellations", json=report())).status_code == 401
    wrong = await client.post("/v1/cancellations", json=report(), headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "bearer token" in wrong.json()["detail"]


async def test_same_key_same_body_gets_the_same_answer_and_publishes_once(intake: Intake) -> None:
    app, client = intake
    body, key = report(), {"Idempotency-Key": f"form-{uuid.uuid4()}", **BEARER}
    first = await client.post("/v1/cancellations", json=body, headers=key)
    retry = await client.post("/v1/cancellations", json=body, headers=key)
    assert first.status_code == retry.status_code == 202
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert len(await staged_events(app, first.json()["cancellation_id"])) == 1


async def test_concurrent_retries_with_one_key_publish_once(intake: Intake) -> None:
    app, client = intake
    body, key = report(), {"Idempotency-Key": f"form-{uuid.uuid4()}", **BEARER}
    responses = await asyncio.gather(*(client.post("/v1/cancellations", json=body, headers=key) for _ in range(6)))
    assert {response.status_code for response in responses} == {202}
    assert len({response.text for response in responses}) == 1
    assert len(await staged_events(app, responses[0].json()["cancellation_id"])) == 1


async def test_same_key_with_a_different_body_is_422_with_the_reason(intake: Intake) -> None:
    app, client = intake
    body, key = report(), {"Idempotency-Key": f"form-{uuid.uuid4()}", **BEARER}
    first = await client.post("/v1/cancellations", json=body, headers=key)
    changed = await client.post("/v1/cancellations", json={**body, "comment": "something else"}, headers=key)
    assert changed.status_code == 422 and "different body" in changed.json()["detail"]
    assert len(await staged_events(app, first.json()["cancellation_id"])) == 1


async def test_without_a_key_each_report_is_new(intake: Intake) -> None:
    app, client = intake
    body = report()
    first = await client.post("/v1/cancellations", json=body, headers=BEARER)
    second = await client.post("/v1/cancellations", json=body, headers=BEARER)
    assert first.json()["event_id"] != second.json()["event_id"]
    assert len(await staged_events(app, first.json()["cancellation_id"])) == 2


@pytest.mark.parametrize(
    "body, field",
    [
        ({"comment": "no customer"}, "customer_id"),
        ({"customer_id": "c", "initiated_by": "martians"}, "initiated_by"),
        ({"customer_id": "c", "mrr": {"amount_minor": 10, "currency": "euros"}}, "mrr.currency"),
        ({"customer_id": "c", "colour": "red"}, "colour"),
        ({"customer_id": "c", "effective_at": "2026-12-31T00:00:00"}, "effective_at"),  # no time zone
        # Reports of one subscription are ordered by milliseconds since 1970: an earlier time has no place there.
        ({"customer_id": "c", "occurred_at": "0146-07-17T05:13:44+11:46"}, "occurred_at"),
    ],
)
async def test_invalid_fields_are_422_naming_them(intake: Intake, body: dict, field: str) -> None:
    _, client = intake
    response = await client.post("/v1/cancellations", json=body, headers=BEARER)
    assert response.status_code == 422
    assert field in [problem["field"] for problem in response.json()["errors"]]


async def test_idempotency_keys_belong_to_the_token_that_sent_them(database_url: str, amqp_url: str) -> None:
    """Two tools with their own tokens may pick the same key: neither gets the other's answer or a 422."""
    from tests.conftest import TOKEN

    other_token = "other-tool-" + uuid.uuid4().hex
    settings = intake_settings(database_url=database_url, amqp_url=amqp_url, api_tokens=[TOKEN, other_token])
    key = {"Idempotency-Key": f"shared-key-{uuid.uuid4().hex[:8]}"}
    async with running_intake(settings) as (_app, client):
        first, second = report(), report()
        mine = await client.post("/v1/cancellations", json=first, headers=BEARER | key)
        theirs = await client.post(
            "/v1/cancellations", json=second, headers={"Authorization": f"Bearer {other_token}"} | key
        )
        again = await client.post("/v1/cancellations", json=first, headers=BEARER | key)
    assert mine.status_code == theirs.status_code == again.status_code == 202, (mine.text, theirs.text)
    assert theirs.json()["outcome"] == "accepted" and "Idempotent-Replayed" not in theirs.headers
    assert theirs.json()["cancellation_id"] == f"api:{second['subscription_id']}"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["cancellation_id"] == mine.json()["cancellation_id"]
