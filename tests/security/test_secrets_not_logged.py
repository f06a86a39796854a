"""Secrets never reach the logs: the services run as real processes at DEBUG, are fed genuine and wrong
credentials, and their whole log output is searched for every secret and every presented credential."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.chaos.processes import ServiceProcess, brink_env, running_services
from tests.commands import rabbitmqctl
from tests.conftest import eventually, unavailable
from tests.helpers import signed, stripe_event, stripe_subscription
from tests.intake_helpers import chargebee_event, chargebee_subscription

STRIPE_SECRET = "whsec_logcheck_" + uuid.uuid4().hex
API_TOKEN = "logcheck-token-" + uuid.uuid4().hex
WRONG_TOKEN = "typo-of-a-real-token-" + uuid.uuid4().hex
CHARGEBEE_USER = "cb-user-" + uuid.uuid4().hex[:8]
CHARGEBEE_PASSWORD = "cb-pass-" + uuid.uuid4().hex
WRONG_CHARGEBEE_PASSWORD = "cb-wrong-" + uuid.uuid4().hex
AMQP_PASSWORD = "amqp-pass-" + uuid.uuid4().hex


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def amqp_url_with_password(amqp_url: str) -> Iterator[str]:
    """A broker user of our own in this run's vhost, so the AMQP password is one worth searching for."""
    parts = urlsplit(amqp_url)
    vhost = parts.path.lstrip("/")
    if not vhost:
        unavailable(
            "a private RabbitMQ virtual host (BRINK_TEST_AMQP_URL points at a shared one)", RuntimeError("no vhost")
        )
    user = f"brink-logcheck-{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_user", user, AMQP_PASSWORD)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        yield urlunsplit(
            (parts.scheme, f"{user}:{AMQP_PASSWORD}@{parts.hostname}:{parts.port or 5672}", parts.path, "", "")
        )
    finally:
        rabbitmqctl("delete_user", user)


@pytest.fixture
def services(sqlite_url: str, amqp_url_with_password: str, tmp_path: Path) -> Iterator[dict[str, ServiceProcess]]:
    env = brink_env(
        database_url=sqlite_url,
        amqp_url=amqp_url_with_password,
        api_tokens=API_TOKEN,
        stripe_webhook_secrets=STRIPE_SECRET,
        chargebee_webhook_username=CHARGEBEE_USER,
        chargebee_webhook_password=CHARGEBEE_PASSWORD,
        log_level="DEBUG",
        host="127.0.0.1",
        outbox_poll_seconds="0.2",
    )
    with running_services(env, tmp_path) as processes:
        yield processes


async def exercise(services: dict[str, ServiceProcess]) -> None:
    """Genuine and wrong credentials on every door, and one cancellation all the way to a case."""
    intake = services["intake"].base_url
    good = {"Authorization": f"Bearer {API_TOKEN}"}
    wrong = {"Authorization": f"Bearer {WRONG_TOKEN}"}
    subscription = stripe_subscription()
    async with httpx.AsyncClient(timeout=10) as client:
        body, headers = signed(stripe_event("customer.subscription.deleted", subscription), STRIPE_SECRET)
        assert (await client.post(f"{intake}/webhooks/stripe", content=body, headers=headers)).status_code == 200
        body, headers = signed(stripe_event("customer.subscription.deleted", stripe_subscription()), "whsec_wrong")
        assert (await client.post(f"{intake}/webhooks/stripe", content=body, headers=headers)).status_code == 401
        event = json.dumps(chargebee_event("subscription_cancelled", chargebee_subscription())).encode()
        for password, expected in ((CHARGEBEE_PASSWORD, 200), (WRONG_CHARGEBEE_PASSWORD, 401)):
            response = await client.post(
                f"{intake}/webhooks/chargebee",
                content=event,
                headers={"Authorization": basic(CHARGEBEE_USER, password), "Content-Type": "application/json"},
            )
            assert response.status_code == expected, response.text
        assert (await client.post(f"{intake}/v1/cancellations", json={}, headers=wrong)).status_code == 401
        for service, path in (("diagnosis", "/v1/accounts/x/diagnosis"), ("outreach", "/v1/cases")):
            assert (await client.get(services[service].base_url + path, headers=wrong)).status_code == 401
            assert (await client.get(services[service].base_url + path, headers=good)).status_code in (200, 404)

        async def case_opened() -> bool:
            response = await client.get(f"{services['outreach'].base_url}/v1/cases", headers=good)
            return any(case["account_id"] == f"stripe:{subscription['customer']}" for case in response.json()["items"])

        await eventually(case_opened, timeout=30, interval=0.3)


async def test_no_secret_or_presented_credential_appears_in_any_log(services: dict[str, ServiceProcess]) -> None:
    await exercise(services)
    for process in services.values():
        await asyncio.to_thread(process.stop)  # shutdown lines are searched too
    logs = {name: process.log_text() for name, process in services.items()}

    # The capture is real: each service logged its start and the work it did.
    assert all("service.started" in text for text in logs.values()), logs
    assert "intake.webhook.accepted" in logs["intake"] and "intake.webhook.rejected" in logs["intake"]

    secrets = {
        "Stripe webhook secret": STRIPE_SECRET,
        "API token": API_TOKEN,
        "wrong bearer token presented": WRONG_TOKEN,
        "Chargebee password": CHARGEBEE_PASSWORD,
        "wrong Chargebee password presented": WRONG_CHARGEBEE_PASSWORD,
        "Chargebee basic credentials": basic(CHARGEBEE_USER, CHARGEBEE_PASSWORD).split()[1],
        "AMQP password": AMQP_PASSWORD,
    }
    leaks = [(what, service) for what, secret in secrets.items() for service, text in logs.items() if secret in text]
    assert leaks == [], f"secrets found in logs: {leaks}"
