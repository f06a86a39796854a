"""An attacker who can post to the public Stripe URL: forged, replayed, expired and transplanted signatures.

Each is refused with 401 and leaves no trace: no delivery row, nothing staged to publish.
"""

from __future__ import annotations

import json
import time

import pytest

from shared.signing import stripe_signature, stripe_signature_header
from tests.conftest import STRIPE_SECRET
from tests.helpers import stripe_event, stripe_subscription
from tests.intake_helpers import delivery_row, staged_events
from tests.security.conftest import Intake


def cancellation() -> tuple[dict, bytes]:
    event = stripe_event("customer.subscription.deleted", stripe_subscription())
    return event, json.dumps(event).encode()


async def assert_refused_without_trace(intake: Intake, event: dict, body: bytes, header: str | None) -> str:
    app, client = intake
    headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": header} if header is not None else {})
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert await delivery_row(app, "stripe", event["id"]) is None
    assert await staged_events(app, f"stripe:{event['data']['object']['id']}") == []
    return response.json()["detail"]


def header_for(body: bytes, *, secret: str = STRIPE_SECRET, timestamp: int | None = None) -> str:
    return stripe_signature_header([secret], body, timestamp)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "t=notanumber,v1=abc",
        f"t={int(time.time())}",
        f"t={int(time.time())},v1=" + "0" * 64,
        f"t={int(time.time())},v1=" + "f" * 63,
    ],
    ids=["missing", "empty", "garbage", "bad-timestamp", "no-v1", "zero-hmac", "short-hmac"],
)
async def test_forged_signature_headers_are_refused(intake: Intake, header: str | None) -> None:
    event, body = cancellation()
    await assert_refused_without_trace(intake, event, body, header)


async def test_signature_with_another_secret_is_refused(intake: Intake) -> None:
    event, body = cancellation()
    detail = await assert_refused_without_trace(intake, event, body, header_for(body, secret="whsec_attacker_guess"))
    assert "secret" in detail


async def test_signature_of_another_body_is_refused(intake: Intake) -> None:
    event, body = cancellation()
    genuine_header = header_for(
        json.dumps(stripe_event("customer.subscription.deleted", stripe_subscription())).encode()
    )
    await assert_refused_without_trace(intake, event, body, genuine_header)


async def test_body_tampered_after_signing_is_refused(intake: Intake) -> None:
    event, body = cancellation()
    header = header_for(body)
    tampered = body.replace(b'"too_expensive"', b'"missing_features"')
    assert tampered != body
    await assert_refused_without_trace(intake, event, tampered, header)


async def test_expired_timestamp_is_refused_even_with_a_valid_hmac(intake: Intake) -> None:
    event, body = cancellation()
    detail = await assert_refused_without_trace(intake, event, body, header_for(body, timestamp=int(time.time()) - 301))
    assert "tolerance" in detail


async def test_replayed_capture_after_the_tolerance_is_refused(intake: Intake) -> None:
    """A genuine delivery captured by an attacker and replayed later: the old timestamp gives it away."""
    event, body = cancellation()
    captured_at = int(time.time()) - 600
    captured = f"t={captured_at},v1={stripe_signature(STRIPE_SECRET, body, captured_at)}"
    await assert_refused_without_trace(intake, event, body, captured)


async def test_replay_with_a_fresh_timestamp_but_the_old_hmac_is_refused(intake: Intake) -> None:
    event, body = cancellation()
    old = int(time.time()) - 600
    moved = f"t={int(time.time())},v1={stripe_signature(STRIPE_SECRET, body, old)}"
    await assert_refused_without_trace(intake, event, body, moved)


async def test_downgrade_to_v0_only_is_refused(intake: Intake) -> None:
    """Only v1 (HMAC-SHA256) counts; a header offering just another scheme is not a signature."""
    event, body = cancellation()
    now = int(time.time())
    await assert_refused_without_trace(intake, event, body, f"t={now},v0={stripe_signature(STRIPE_SECRET, body, now)}")


async def test_replay_within_the_tolerance_changes_nothing(intake: Intake) -> None:
    """Inside the tolerance a replay is indistinguishable from Stripe's own retry: answered, never applied twice."""
    app, client = intake
    event, body = cancellation()
    headers = {"Stripe-Signature": header_for(body), "Content-Type": "application/json"}
    first = await client.post("/webhooks/stripe", content=body, headers=headers)
    replay = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert first.json()["outcome"] == "accepted"
    assert replay.status_code == 200 and replay.json()["outcome"] == "duplicate"
    assert len(await staged_events(app, f"stripe:{event['data']['object']['id']}")) == 1
