"""Chargebee authenticates with HTTP basic auth: anything but the configured pair is refused, and with no pair
configured everything is refused."""

from __future__ import annotations

import base64
import json

import pytest

from tests.intake_helpers import (
    CHARGEBEE_PASSWORD,
    CHARGEBEE_USER,
    basic_auth,
    chargebee_event,
    chargebee_subscription,
    delivery_row,
    intake_settings,
    running_intake,
)
from tests.security.conftest import Intake


def cancellation() -> dict:
    return chargebee_event("subscription_cancelled", chargebee_subscription())


def raw_basic(value: str) -> dict[str, str]:
    return {"Authorization": f"Basic {value}", "Content-Type": "application/json"}


WRONG_CREDENTIALS = {
    "missing": {"Content-Type": "application/json"},
    "wrong-password": basic_auth(password=CHARGEBEE_PASSWORD + "x"),
    "wrong-username": basic_auth(username=CHARGEBEE_USER + "x"),
    "empty-password": basic_auth(password=""),
    "password-prefix": basic_auth(password=CHARGEBEE_PASSWORD[:-1]),
    "swapped": basic_auth(username=CHARGEBEE_PASSWORD, password=CHARGEBEE_USER),
    "bearer-scheme": {"Authorization": f"Bearer {CHARGEBEE_PASSWORD}", "Content-Type": "application/json"},
    "not-base64": raw_basic("%%%not-base64%%%"),
    "no-colon": raw_basic(base64.b64encode(CHARGEBEE_USER.encode()).decode()),
}


@pytest.mark.parametrize("headers", WRONG_CREDENTIALS.values(), ids=WRONG_CREDENTIALS.keys())
async def test_wrong_or_missing_credentials_are_refused(intake: Intake, headers: dict[str, str]) -> None:
    app, client = intake
    event = cancellation()
    response = await client.post("/webhooks/chargebee", content=json.dumps(event).encode(), headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").lower().startswith("basic")
    assert await delivery_row(app, "chargebee", event["id"]) is None


async def test_the_configured_pair_is_accepted_with_200(intake: Intake) -> None:
    app, client = intake
    event = cancellation()
    response = await client.post("/webhooks/chargebee", content=json.dumps(event).encode(), headers=basic_auth())
    assert response.status_code == 200, response.text
    assert await delivery_row(app, "chargebee", event["id"]) is not None


async def test_everything_is_refused_when_no_credentials_are_configured(sqlite_url: str, amqp_url: str) -> None:
    settings = intake_settings(
        database_url=sqlite_url, amqp_url=amqp_url, chargebee_webhook_username=None, chargebee_webhook_password=None
    )
    async with running_intake(settings) as (app, client):
        for headers in (basic_auth(), basic_auth(username="", password=""), {"Content-Type": "application/json"}):
            event = cancellation()
            response = await client.post("/webhooks/chargebee", content=json.dumps(event).encode(), headers=headers)
            assert response.status_code == 401, response.text
            assert await delivery_row(app, "chargebee", event["id"]) is None
