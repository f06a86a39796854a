"""The spine: a signed Stripe webhook in, a case with a task out, through the real broker and database."""

from __future__ import annotations

from sqlalchemy import func, select

from services.intake.models import WebhookEvent, outbox
from tests.conftest import STRIPE_SECRET, Brink, eventually
from tests.helpers import signed, stripe_event, stripe_subscription


async def cases_for(brink: Brink, account_id: str) -> list[dict]:
    response = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"limit": 500})
    assert response.status_code == 200
    return [case for case in response.json()["items"] if case["account_id"] == account_id]


async def test_signed_cancellation_becomes_a_case_with_a_task(brink: Brink) -> None:
    subscription = stripe_subscription(feedback="too_expensive", comment="We could not justify the price")
    event = stripe_event("customer.subscription.deleted", subscription)
    body, headers = signed(event, STRIPE_SECRET)

    response = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"outcome": "accepted", "event_id": event["id"]}
    account_id = f"stripe:{subscription['customer']}"
    cases = await eventually(lambda: cases_for(brink, account_id))
    case = cases[0]
    assert case["status"] == "open"
    assert case["symptom"] == "too_expensive"
    assert case["mrr_minor"] == 49000 and case["currency"] == "usd"
    assert len(case["tasks"]) >= 1 and case["tasks"][0]["status"] == "open"
    diagnosis = await brink.diagnosis.get(f"/v1/accounts/{account_id}/diagnosis", headers=brink.auth)
    assert diagnosis.status_code == 200
    assert diagnosis.json()["diagnosis"]["symptom"] == "too_expensive"


async def test_wrong_signature_is_401_and_leaves_nothing(brink: Brink) -> None:
    event = stripe_event("customer.subscription.deleted", stripe_subscription())
    body, headers = signed(event, "whsec_not_the_configured_secret")

    response = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)

    assert response.status_code == 401
    assert "secret" in response.json()["detail"]
    runtime = brink.apps["intake"].state.runtime
    async with runtime.sessions() as session:
        stored = await session.scalar(
            select(func.count()).select_from(WebhookEvent).where(WebhookEvent.external_id == event["id"])
        )
        staged = await session.scalar(
            select(func.count()).select_from(outbox).where(outbox.c.body.contains(event["id"]))
        )
    assert stored == 0 and staged == 0


async def test_duplicate_delivery_opens_no_second_case(brink: Brink) -> None:
    subscription = stripe_subscription(feedback="unused")
    event = stripe_event("customer.subscription.deleted", subscription)
    body, headers = signed(event, STRIPE_SECRET)
    account_id = f"stripe:{subscription['customer']}"

    first = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)
    await eventually(lambda: cases_for(brink, account_id))
    second = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)

    assert first.json()["outcome"] == "accepted"
    assert second.status_code == 200 and second.json()["outcome"] == "duplicate"
    # Give a wrongly published second event every chance to arrive before counting.
    marker = stripe_subscription(feedback="unused")
    body2, headers2 = signed(stripe_event("customer.subscription.deleted", marker), STRIPE_SECRET)
    await brink.intake.post("/webhooks/stripe", content=body2, headers=headers2)
    await eventually(lambda: cases_for(brink, f"stripe:{marker['customer']}"))
    assert len(await cases_for(brink, account_id)) == 1


async def test_cases_need_a_bearer_token(brink: Brink) -> None:
    missing = await brink.outreach.get("/v1/cases")
    wrong = await brink.outreach.get("/v1/cases", headers={"Authorization": "Bearer nope"})
    assert missing.status_code == 401 and wrong.status_code == 401
    assert "bearer token" in missing.json()["detail"]
