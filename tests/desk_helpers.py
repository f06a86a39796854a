"""Seeding the desk through the real path (diagnosis.completed on the broker) and signing in over HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from services.outreach import people
from shared.db import make_engine, transaction
from shared.events import DiagnosisCompleted, Envelope, Evidence, Hypothesis, Unknown
from tests.conftest import TOKEN, eventually
from tests.outreach_helpers import diagnosis, wipe_outreach

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PASSWORD = "correct horse battery staple"


def rich_diagnosis(
    *,
    customer: str,
    root_cause: str,
    owner: str | None,
    priority: int,
    mrr_minor: int,
    days_left: float = 20,
    **fields: Any,
) -> DiagnosisCompleted:
    """A diagnosis with what the case page shows: stated reason, hypotheses with evidence, unknowns, tried."""
    base = diagnosis(
        root_cause=root_cause,
        account_owner=owner,
        priority=priority,
        mrr_minor=mrr_minor,
        now=datetime.now(UTC),
        effective_in=timedelta(days=days_left),
        **fields,
    )
    return base.model_copy(
        update={
            "customer_name": customer,
            "stated_reason": "too_expensive",
            "billing_reason": "cancellation_requested",
            "comment": "Nobody on the team ended up using it.",
            "hypotheses": [
                Hypothesis(
                    root_cause=root_cause,
                    confidence=0.72,
                    evidence=[
                        Evidence(
                            signal="usage.weekly_active_users",
                            detail="3 of 40 seats active in the last 30 days",
                            weight=0.6,
                        )
                    ],
                ),
                Hypothesis(root_cause="wrong_fit", confidence=0.18, evidence=[]),
            ],
            "unknowns": [
                Unknown(
                    root_cause="champion_left",
                    signals_to_check=["crm.champion_status"],
                    questions=["Is the person who bought Brink still with the company?"],
                )
            ],
            "tried": ["discount"],
        }
    )


async def wipe(database_url: str) -> None:
    """The desk shows every case in the database: start each test from none (the database is per run)."""
    engine = make_engine(database_url)
    try:
        await wipe_outreach(engine)
    finally:
        await engine.dispose()


async def publish(runtime: Any, payload: DiagnosisCompleted) -> None:
    """Send a diagnosis the way the diagnosis service does: onto the broker."""
    await runtime.broker.publish(
        Envelope.wrap(payload, correlation_id=f"desk-{payload.cancellation_id}", source="test")
    )


async def case_id_of(client: httpx.AsyncClient, account_id: str) -> str:
    """The id of the case outreach opened for an account, once it has."""

    async def find() -> str | None:
        response = await client.get(
            "/v1/cases", params={"account_id": account_id}, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        items = response.json()["items"]
        return items[0]["id"] if items else None

    return await eventually(find)


async def add_person(
    runtime: Any,
    email: str,
    *,
    role: str = "csm",
    name: str | None = None,
    manager: str | None = None,
    password: str | None = PASSWORD,
) -> None:
    """A person of the desk, added the way `brink users add` does."""
    async with transaction(runtime.sessions) as session:
        await people.add_person(
            session,
            email=email,
            name=name or email.split("@")[0].title(),
            role=role,
            manager_email=manager,
            password=password,
            now=datetime.now(UTC),
        )


async def sign_in(client: httpx.AsyncClient, email: str = "dana@example.com", *, password: str = PASSWORD) -> str:
    """Sign in as a person; returns the page's CSRF token."""
    response = await client.post("/desk/signin", data={"email": email, "password": password, "next": "/desk"})
    assert response.status_code == 303, response.text
    page = await client.get("/desk")
    assert page.status_code == 200
    return CSRF.search(page.text).group(1)
