"""A scheduled cancellation whose date moves (Stripe ``cancel_at``), through signed webhooks into intake, the real
broker, diagnosis and outreach: one case, whose cancel date moves, with a history entry."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from tests.conftest import STRIPE_SECRET, Brink, eventually
from tests.helpers import signed, stripe_event, stripe_subscription

DAY = 86_400


async def _post(brink: Brink, event: dict[str, Any]) -> str:
    body, headers = signed(event, STRIPE_SECRET)
    answer = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["outcome"])


async def _cases_of(brink: Brink, cancellation_id: str) -> list[dict[str, Any]]:
    response = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"limit": 500})
    return [case for case in response.json()["items"] if case["cancellation_id"] == cancellation_id]


async def test_a_moved_cancel_at_keeps_one_case_and_moves_its_date(brink: Brink) -> None:
    now = int(time.time())
    first_date, moved_date = now + 20 * DAY, now + 45 * DAY
    subscription = stripe_subscription(status="active", canceled_at=None, ended_at=None)
    cancellation_id = f"stripe:{subscription['id']}"
    scheduled = stripe_event(
        "customer.subscription.updated",
        subscription | {"cancel_at": first_date},
        created=now - 300,
        previous_attributes={"cancel_at": None},
    )
    assert await _post(brink, scheduled) == "accepted"

    async def opened() -> dict[str, Any] | None:
        found = await _cases_of(brink, cancellation_id)
        return found[0] if found and found[0]["effective_at"] else None

    case = await eventually(opened)
    assert datetime.fromisoformat(case["effective_at"]) == datetime.fromtimestamp(first_date, UTC)

    moved = stripe_event(
        "customer.subscription.updated",
        subscription | {"cancel_at": moved_date},
        created=now - 200,
        previous_attributes={"cancel_at": first_date},
    )
    assert await _post(brink, moved) == "accepted"
    assert await _post(brink, moved) == "duplicate"  # Stripe retried: nothing changes twice

    async def moved_case() -> list[dict[str, Any]] | None:
        found = await _cases_of(brink, cancellation_id)
        at = [datetime.fromisoformat(case["effective_at"]) for case in found]
        return found if at == [datetime.fromtimestamp(moved_date, UTC)] else None

    [after] = await eventually(moved_case)
    assert after["id"] == case["id"] and after["status"] == "open"
    detail = (await brink.outreach.get(f"/v1/cases/{case['id']}", headers=brink.auth)).json()
    [entry] = [event for event in detail["events"] if event["kind"] == "effective_date_moved"]
    assert datetime.fromisoformat(entry["detail"]["before"]) == datetime.fromtimestamp(first_date, UTC)
    assert datetime.fromisoformat(entry["detail"]["after"]) == datetime.fromtimestamp(moved_date, UTC)
    assert detail["state_version"] == now - 200

    # The first schedule delivered again late (an older event under a new id) moves nothing back.
    late = stripe_event(
        "customer.subscription.updated",
        subscription | {"cancel_at": first_date},
        created=now - 250,
        previous_attributes={"cancel_at": None},
    )
    assert await _post(brink, late) == "superseded"
    assert [c["effective_at"] for c in await _cases_of(brink, cancellation_id)] == [after["effective_at"]]
