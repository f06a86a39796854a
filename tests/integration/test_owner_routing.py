"""Cases reach the real owner, from every source, through intake, diagnosis and outreach on the real broker:
Stripe metadata (subscription or customer), Chargebee meta_data, the internal API, the relationship signals;
round-robin among the role's people when the owner is unknown; escalation to the owner's manager."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from services.outreach.escalation import fire_due_timers
from services.outreach.models import Task
from services.outreach.policy import Policy
from shared.db import transaction
from tests.conftest import STRIPE_SECRET, Brink, eventually, start_brink
from tests.desk_helpers import add_person, wipe
from tests.helpers import signed, stripe_event, stripe_subscription
from tests.intake_helpers import CHARGEBEE_PASSWORD, CHARGEBEE_USER, basic_auth, chargebee_event, chargebee_subscription
from tests.outreach_helpers import FakeClock


@pytest.fixture
async def brink(database_url: str, amqp_url: str) -> AsyncIterator[Brink]:
    await wipe(database_url)
    async with AsyncExitStack() as stack:
        brink = await start_brink(
            stack,
            database_url=database_url,
            amqp_url=amqp_url,
            chargebee_webhook_username=CHARGEBEE_USER,
            chargebee_webhook_password=CHARGEBEE_PASSWORD,
        )
        runtime = brink.apps["outreach"].state.runtime
        await add_person(runtime, "vera@example.com", role="vp_customer_success")
        await add_person(runtime, "mia@example.com", role="cs_manager", manager="vera@example.com")
        await add_person(runtime, "olga@example.com", role="csm", manager="mia@example.com")
        await add_person(runtime, "pete@example.com", role="csm", manager="mia@example.com")
        yield brink
    await wipe(database_url)  # people set up here would change how later tests' cases are routed


async def case_of(brink: Brink, account_id: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        response = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"account_id": account_id})
        items = response.json()["items"]
        return items[0] if items else None

    return await eventually(find, timeout=20)


async def test_stripe_subscription_or_customer_metadata_names_the_owner(brink: Brink) -> None:
    subscription = stripe_subscription(metadata={"account_owner": " Olga@Example.com "})
    body, headers = signed(stripe_event("customer.subscription.deleted", subscription), STRIPE_SECRET)
    assert (await brink.intake.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
    case = await case_of(brink, f"stripe:{subscription['customer']}")
    assert case["owner"] == "olga@example.com"
    assert {task["owner"] for task in case["tasks"] if task["owner_role"] == "csm"} == {"olga@example.com"}

    customer = {
        "id": f"cus_{subscription['id'][4:]}x",
        "object": "customer",
        "metadata": {"account_owner": "pete@example.com"},
    }
    expanded = stripe_subscription(customer_id=None, metadata={"account_owner": "olga@example.com"})
    expanded["customer"] = customer  # the customer's owner wins over the subscription's
    body, headers = signed(stripe_event("customer.subscription.deleted", expanded), STRIPE_SECRET)
    assert (await brink.intake.post("/webhooks/stripe", content=body, headers=headers)).status_code == 200
    assert (await case_of(brink, f"stripe:{customer['id']}"))["owner"] == "pete@example.com"


async def test_chargebee_meta_data_names_the_owner(brink: Brink) -> None:
    subscription = chargebee_subscription()
    customer = {
        "id": subscription["customer_id"],
        "email": "ana@example.com",
        "company": "Lima Ltda",
        "object": "customer",
        "meta_data": {"account_owner": "pete@example.com"},
    }
    event = chargebee_event("subscription_cancelled", subscription, customer=customer)
    response = await brink.intake.post("/webhooks/chargebee", json=event, headers=basic_auth())
    assert response.status_code == 200, response.text
    case = await case_of(brink, f"chargebee:{subscription['customer_id']}")
    assert case["owner"] == "pete@example.com"


async def test_the_internal_api_names_the_owner_and_an_unknown_owner_goes_round_robin(brink: Brink) -> None:
    reported = await brink.intake.post(
        "/v1/cancellations",
        headers=brink.auth,
        json={"customer_id": "acme-1", "account_owner": "olga@example.com", "feedback": "too_expensive"},
    )
    assert reported.status_code == 202, reported.text
    assert (await case_of(brink, "api:acme-1"))["owner"] == "olga@example.com"

    owners = []
    for customer in ("acme-2", "acme-3"):
        response = await brink.intake.post(
            "/v1/cancellations",
            headers=brink.auth,
            json={"customer_id": customer, "account_owner": "someone-who-left@example.com", "feedback": "unused"},
        )
        assert response.status_code == 202
        case = await case_of(brink, f"api:{customer}")
        owners.append(case["owner"])
        opened = (await brink.outreach.get(f"/v1/cases/{case['id']}", headers=brink.auth)).json()["events"][0]
        assert opened["detail"]["account_owner"] == "someone-who-left@example.com"
    # Taken in turns among the active CSMs, never the rotation's placeholder names.
    assert sorted(owners) == ["olga@example.com", "pete@example.com"]


async def test_the_relationship_signals_name_the_owner_when_billing_does_not(brink: Brink) -> None:
    signals = await brink.diagnosis.put(
        "/v1/accounts/api:acme-9/signals",
        headers=brink.auth,
        json={
            "relationship": {
                "observed_at": datetime.now(UTC).isoformat(),
                "source": "hubspot",
                "account_owner": "Pete@example.com",
            }
        },
    )
    assert signals.status_code == 200, signals.text
    reported = await brink.intake.post("/v1/cancellations", headers=brink.auth, json={"customer_id": "acme-9"})
    assert reported.status_code == 202
    assert (await case_of(brink, "api:acme-9"))["owner"] == "pete@example.com"


async def test_escalation_goes_to_the_owners_manager_then_up(brink: Brink) -> None:
    reported = await brink.intake.post(
        "/v1/cancellations",
        headers=brink.auth,
        json={"customer_id": "acme-5", "account_owner": "olga@example.com", "feedback": "unused"},
    )
    assert reported.status_code == 202
    case = await case_of(brink, "api:acme-5")
    outreach = brink.apps["outreach"].state
    later = FakeClock(datetime.now(UTC))

    async def climbed_rungs(expected: int) -> list[Any]:
        # The scheduler's passes: on PostgreSQL a timer whose case another transaction holds (the diagnosis
        # updated from the task just completed) is skipped by one pass and fired by a later one.
        while True:
            async with transaction(outreach.runtime.sessions) as session:
                if not await fire_due_timers(session, clock=later, policy=MANAGER_AND_VP(outreach.policy)):
                    break
        async with outreach.runtime.sessions() as session:
            rows = await session.execute(
                select(Task.rung, Task.owner).where(Task.case_id == case["id"], Task.kind == "escalation")
            )
            escalations = sorted(rows.all(), key=lambda row: row[0] != "cs_manager")
        return escalations if len(escalations) >= expected else []

    climbed: list[Any] = []
    for rungs in (1, 2):
        # The latest task goes unanswered; a few days on, the scheduler's passes climb one rung.
        async with outreach.runtime.sessions() as session:
            tasks = await session.execute(select(Task).where(Task.case_id == case["id"], Task.status == "open"))
            latest = max(tasks.scalars(), key=lambda task: (task.kind == "escalation", task.position))
        answered = await brink.outreach.post(
            f"/v1/tasks/{latest.id}/complete", headers=brink.auth, json={"result": "no_answer"}
        )
        assert answered.status_code == 200, answered.text
        later.advance(days=4)
        climbed = await eventually(lambda rungs=rungs: climbed_rungs(rungs))
    assert climbed == [("cs_manager", "mia@example.com"), ("vp_customer_success", "vera@example.com")]


def MANAGER_AND_VP(policy: Policy) -> Policy:
    """The policy with a ladder of two rungs: the CS manager, then the VP."""
    ladder = policy.ladder_for(None)
    two = ladder.model_copy(update={"silence": tuple(r for r in ladder.silence if r.role != "csm")[:2]})
    return replace(policy, ladders={"default": two})
