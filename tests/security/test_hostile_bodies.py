"""Hostile bodies: too large (413, also when streamed without a length) and nested deep enough to break a
recursive parser (400, 413 or 422 — never a 500, never a hang)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import TOKEN
from tests.fuzz.test_parsers_hypothesis import WRONG_TYPED
from tests.helpers import signed
from tests.intake_helpers import basic_auth
from tests.security.apps import build_apps
from tests.security.conftest import Intake

LIMIT = 1024 * 1024
CLEAN_REFUSALS = {400, 413, 422}
BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def stripe_headers(body: bytes) -> dict[str, str]:
    from tests.conftest import STRIPE_SECRET

    return signed(body, STRIPE_SECRET)[1]


def oversized() -> bytes:
    filler = "x" * (LIMIT + 1)
    return json.dumps({"id": "evt_big", "type": "customer.subscription.deleted", "filler": filler}).encode()


def nested(depth: int) -> bytes:
    return b'{"id":"evt_deep","type":"customer.subscription.deleted","data":' + b"[" * depth + b"]" * depth + b"}"


async def chunks(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


async def post(
    client: httpx.AsyncClient, path: str, body: bytes | AsyncIterator[bytes], headers: dict[str, str]
) -> httpx.Response:
    # A hang is a failure too: every hostile body gets its answer within seconds.
    return await asyncio.wait_for(client.post(path, content=body, headers=headers), timeout=20)


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_oversized_webhooks_are_413(intake: Intake, streamed: bool) -> None:
    _app, client = intake
    body = oversized()
    for path, headers in (("/webhooks/stripe", stripe_headers(body)), ("/webhooks/chargebee", basic_auth())):
        response = await post(client, path, chunks(body) if streamed else body, headers)
        assert response.status_code == 413, (path, response.text)
        assert "limit" in response.json()["detail"]


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
async def test_oversized_v1_bodies_are_413(sqlite_url: str, amqp_url: str, streamed: bool) -> None:
    app = build_apps(database_url=sqlite_url, amqp_url=amqp_url)["intake"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
        body = oversized()
        response = await post(client, "/v1/cancellations", chunks(body) if streamed else body, BEARER)
    assert response.status_code == 413, response.text


@pytest.mark.parametrize("depth", [2_000, 100_000])
async def test_deeply_nested_bearer_api_body_is_refused_cleanly(sqlite_url: str, amqp_url: str, depth: int) -> None:
    app = build_apps(database_url=sqlite_url, amqp_url=amqp_url)["intake"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake") as client:
        response = await post(client, "/v1/cancellations", nested(depth), BEARER)
    assert response.status_code in CLEAN_REFUSALS, response.text


@pytest.mark.parametrize("depth", [2_000, 100_000])
async def test_deeply_nested_signed_stripe_body_is_refused_cleanly(intake: Intake, depth: int) -> None:
    _app, client = intake
    body = nested(depth)
    response = await post(client, "/webhooks/stripe", body, stripe_headers(body))
    assert response.status_code in CLEAN_REFUSALS, response.text


@pytest.mark.parametrize("depth", [2_000, 100_000])
async def test_deeply_nested_chargebee_body_is_refused_cleanly(intake: Intake, depth: int) -> None:
    _app, client = intake
    body = b'{"id":"ev_deep","event_type":"subscription_cancelled","content":' + b"[" * depth + b"]" * depth + b"}"
    response = await post(client, "/webhooks/chargebee", body, basic_auth())
    assert response.status_code in CLEAN_REFUSALS, response.text


@pytest.mark.parametrize("source, event", WRONG_TYPED.values(), ids=WRONG_TYPED.keys())
async def test_authenticated_event_with_a_wrong_typed_field_is_400(
    intake: Intake, source: str, event: dict[str, Any]
) -> None:
    _app, client = intake
    body = json.dumps(event).encode()
    headers = stripe_headers(body) if source == "stripe" else basic_auth()
    response = await post(client, f"/webhooks/{source}", body, headers)
    assert response.status_code == 400, response.text
    assert "bad field" in response.json()["detail"]
