"""Values no table can hold are refused where they arrive, with the field named: never answered 2xx and then
dead-lettered, never a 500 (Stripe retries a 500 for days). Bounds live once, on the event contracts."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.conftest import STRIPE_SECRET, TOKEN
from tests.helpers import signed, stripe_event, stripe_subscription
from tests.intake_helpers import basic_auth, chargebee_event, chargebee_subscription, intake_settings, running_intake
from tests.security.apps import build_apps

BEARER = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
FAR_OFFSET = "9999-12-31T23:59:59-05:00"  # past year 9999 once in UTC
EARLY_OFFSET = "0001-01-01T00:00:00+05:00"  # before year 1 once in UTC


@pytest.fixture
async def intake(database_url: str, amqp_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with running_intake(intake_settings(database_url=database_url, amqp_url=amqp_url)) as (_app, client):
        yield client


async def post_stripe(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/webhooks/stripe", content=body, headers=signed(body, STRIPE_SECRET)[1])


def deleted(**fields: Any) -> dict[str, Any]:
    return stripe_event("customer.subscription.deleted", stripe_subscription(**fields))


STRIPE_REFUSED = {
    # A 255-character customer id makes a 265-character cancellation id.
    "long-customer-id": (lambda: deleted(customer_id="cus_" + "x" * 251, metadata={"account_id": "a1"}), "customer_id"),
    "long-metadata-account-id": (lambda: deleted(metadata={"account_id": "a" * 300}), "account_id"),
    "thirty-digit-amount": (lambda: deleted(unit_amount=10**30), "unit_amount_minor"),
}


@pytest.mark.parametrize("case", STRIPE_REFUSED, ids=STRIPE_REFUSED.keys())
async def test_a_stripe_value_no_table_holds_is_400_naming_the_field(intake: httpx.AsyncClient, case: str) -> None:
    build, field = STRIPE_REFUSED[case]
    response = await post_stripe(intake, json.dumps(build()).encode())
    assert response.status_code == 400, response.text
    assert field in response.json()["detail"]


def raw_event(**replacements: str) -> bytes:
    """A cancellation scheduled by ``cancel_at``, with some values written as raw JSON (numbers json.dumps
    cannot write)."""
    subscription = stripe_subscription(
        status="active", canceled_at=None, ended_at=None, cancel_at="@cancel_at@", quantity="@quantity@"
    )
    event = stripe_event("customer.subscription.updated", subscription, previous_attributes={"cancel_at": None})
    body = json.dumps(event)
    body = body.replace('"@cancel_at@"', replacements.get("cancel_at", "1900000000"))
    return body.replace('"@quantity@"', replacements.get("quantity", "1")).encode()


HOSTILE_STRIPE_BODIES = {
    "integer-of-5000-digits": lambda: raw_event(quantity="9" * 5000),
    "cancel-at-1e20": lambda: raw_event(cancel_at="1e20"),
    "cancel-at-10^30": lambda: raw_event(cancel_at="1" + "0" * 30),
    "quantity-infinity": lambda: raw_event(quantity="Infinity"),
    "quantity-nan": lambda: raw_event(quantity="NaN"),
    "lone-surrogate": lambda: json.dumps(deleted(comment="\ud800")).encode(),
}


@pytest.mark.parametrize("case", HOSTILE_STRIPE_BODIES, ids=HOSTILE_STRIPE_BODIES.keys())
async def test_numbers_and_text_no_database_holds_are_a_clean_400(intake: httpx.AsyncClient, case: str) -> None:
    response = await post_stripe(intake, HOSTILE_STRIPE_BODIES[case]())
    assert response.status_code == 400, response.text
    assert response.json()["detail"]


async def test_a_long_chargebee_name_is_cut_to_fit_rather_than_losing_the_cancellation(
    intake: httpx.AsyncClient,
) -> None:
    customer = {"id": "cb_long_name", "first_name": "A" * 150, "last_name": "B" * 150}
    event = chargebee_event("subscription_cancelled", chargebee_subscription(customer_id="cb_long_name"))
    event["content"]["customer"] = customer
    response = await intake.post("/webhooks/chargebee", json=event, headers=basic_auth())
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "accepted"


@pytest.fixture
async def apps(sqlite_url: str, amqp_url: str) -> dict[str, Any]:
    return build_apps(database_url=sqlite_url, amqp_url=amqp_url)


async def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://brink") as client:
        return await client.request(method, path, headers=BEARER, **kwargs)


def report(**fields: Any) -> bytes:
    return json.dumps({"customer_id": "cus_bounds", **fields}).encode()


REPORTS_REFUSED = {
    "lone-surrogate-name": (report(customer_name="\ud800"), "customer_name"),
    "nul-in-comment": (report(comment="before\x00after"), "comment"),
    "long-customer-id": (report(customer_id="c" * 255), "customer_id"),
    "far-effective-at": (report(effective_at=FAR_OFFSET), "effective_at"),
    "early-occurred-at": (report(occurred_at=EARLY_OFFSET), "occurred_at"),
    "huge-mrr": (report(mrr={"amount_minor": 10**30, "currency": "usd"}), "mrr.amount_minor"),
}


@pytest.mark.parametrize("case", REPORTS_REFUSED, ids=REPORTS_REFUSED.keys())
async def test_v1_cancellations_refuses_what_no_table_holds_with_422_naming_the_field(apps: Any, case: str) -> None:
    body, field = REPORTS_REFUSED[case]
    response = await call(apps["intake"], "POST", "/v1/cancellations", content=body)
    assert response.status_code == 422, response.text
    assert field in [problem["field"] for problem in response.json()["errors"]], response.json()


SIGNALS_REFUSED = {
    "active-users-10^400": ({"active_users": 10**400}, "usage.active_users"),
    "far-observed-at": ({"observed_at": FAR_OFFSET}, "usage.observed_at"),
    "nul-in-source": ({"source": "crm\x00"}, "usage.source"),
}


@pytest.mark.parametrize("case", SIGNALS_REFUSED, ids=SIGNALS_REFUSED.keys())
async def test_account_signals_refuse_what_no_table_or_diagnosis_holds(apps: Any, case: str) -> None:
    change, field = SIGNALS_REFUSED[case]
    usage = {"observed_at": "2026-11-30T10:00:00Z", "source": "crm", **change}
    response = await call(apps["diagnosis"], "PUT", "/v1/accounts/acct_bounds/signals", json={"usage": usage})
    assert response.status_code == 422, response.text
    assert field in [problem["field"] for problem in response.json()["errors"]], response.json()


@pytest.mark.parametrize(
    "path", [f"/v1/tasks?due_before={FAR_OFFSET}", f"/v1/reports/summary?since={EARLY_OFFSET}"], ids=["tasks", "report"]
)
async def test_outreach_date_filters_out_of_range_in_utc_are_422(apps: Any, path: str) -> None:
    response = await call(apps["outreach"], "GET", path.replace("+", "%2B"))
    assert response.status_code == 422, response.text


NUL_URLS = [
    ("outreach", "GET", "/v1/cases/ab%00cd"),
    ("outreach", "GET", "/v1/cases?owner=a%00b"),
    ("outreach", "GET", "/v1/tasks?owner=a%00b"),
    ("outreach", "POST", "/v1/tasks/ab%00cd/complete"),
    ("diagnosis", "GET", "/v1/accounts/ab%00cd/diagnosis"),
]


@pytest.mark.parametrize("service, method, url", NUL_URLS, ids=[url for _, _, url in NUL_URLS])
async def test_a_nul_in_an_id_or_filter_of_the_url_is_400_not_a_database_error(
    database_url: str, service: str, method: str, url: str
) -> None:
    # The apps are not started: the broker is never reached, the database is.
    app = build_apps(database_url=database_url, amqp_url="amqp://guest:guest@127.0.0.1:1/")[service]
    body = {"json": {"result": "reached"}} if method == "POST" else {}
    response = await call(app, method, url, **body)
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["detail"]
