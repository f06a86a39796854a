"""Refusing a webhook costs little and says little: the Stripe header is checked before the body is read, a
signature from the future is refused, a 401 does not tell whether a secret is configured, and a flood of
forged posts is counted but logged once."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.signing import stripe_signature_header
from tests.conftest import STRIPE_SECRET
from tests.helpers import stripe_event, stripe_subscription
from tests.intake_helpers import basic_auth, chargebee_event, chargebee_subscription, intake_settings, running_intake
from tests.security.conftest import Intake

BODY = json.dumps(stripe_event("customer.subscription.deleted", stripe_subscription())).encode()
NOW = int(time.time())

CHEAP_REFUSALS = {
    "missing": None,
    "no-timestamp": "v1=" + "0" * 64,
    "no-v1": f"t={NOW}",
    "too-old": stripe_signature_header([STRIPE_SECRET], BODY, NOW - 3600),
    "from-the-future": stripe_signature_header([STRIPE_SECRET], BODY, NOW + 3600),
    "year-2100": stripe_signature_header([STRIPE_SECRET], BODY, 4_102_444_800),
}


class WatchedBody:
    """A request body that records whether anyone read it."""

    def __init__(self, body: bytes) -> None:
        self.body, self.read = body, False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read = True
        yield self.body


@pytest.mark.parametrize("header", CHEAP_REFUSALS.values(), ids=CHEAP_REFUSALS.keys())
async def test_a_bad_stripe_header_is_refused_before_the_body_is_read(intake: Intake, header: str | None) -> None:
    _app, client = intake
    body = WatchedBody(BODY)
    headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": header} if header else {})
    response = await client.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert not body.read


async def test_a_fresh_genuine_signature_still_passes(intake: Intake) -> None:
    _app, client = intake
    headers = {"Stripe-Signature": stripe_signature_header([STRIPE_SECRET], BODY), "Content-Type": "application/json"}
    response = await client.post("/webhooks/stripe", content=BODY, headers=headers)
    assert response.status_code == 200, response.text


async def refusals(client: httpx.AsyncClient) -> tuple[str, str]:
    stripe = await client.post(
        "/webhooks/stripe",
        content=BODY,
        headers={"Stripe-Signature": stripe_signature_header(["whsec_guess_" + "0" * 24], BODY)},
    )
    chargebee_body = chargebee_event("subscription_cancelled", chargebee_subscription())
    chargebee = await client.post("/webhooks/chargebee", json=chargebee_body, headers=basic_auth(password="guess"))
    assert stripe.status_code == chargebee.status_code == 401
    return stripe.text, chargebee.text


async def test_a_refusal_reads_the_same_whether_or_not_secrets_are_configured(
    intake: Intake, sqlite_url: str, amqp_url: str
) -> None:
    _app, configured = intake
    unconfigured = intake_settings(
        database_url=sqlite_url,
        amqp_url=amqp_url,
        stripe_webhook_secrets=[],
        chargebee_webhook_username=None,
        chargebee_webhook_password=None,
    )
    async with running_intake(unconfigured) as (_other, bare):
        assert await refusals(bare) == await refusals(configured)


async def test_a_flood_of_forged_posts_is_counted_but_logged_once(
    intake: Intake, caplog: pytest.LogCaptureFixture
) -> None:
    _app, client = intake
    forged = {"Stripe-Signature": stripe_signature_header(["whsec_forged_" + "0" * 24], BODY)}
    with caplog.at_level(logging.WARNING):
        for _ in range(40):
            assert (await client.post("/webhooks/stripe", content=BODY, headers=forged)).status_code == 401
    warnings = [record for record in caplog.records if "intake.webhook.rejected" in str(record.msg)]
    assert len(warnings) <= 1, len(warnings)
    metrics = (await client.get("/metrics")).text
    rejected = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("brink_webhooks_total{") and 'source="stripe"' in line and 'outcome="rejected"' in line
    ]
    assert sum(rejected) >= 40
