"""Outreach's HTTP API with the services running on the real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest

from shared.events import Envelope, Payload
from tests.conftest import Brink, eventually, start_brink
from tests.outreach_helpers import diagnosis as diagnosis_at
from tests.outreach_helpers import withdrawal


def diagnosis(**fields: object):  # the services run on the wall clock here
    return diagnosis_at(now=datetime.now(UTC), **fields)


@pytest.fixture
async def brink(database_url: str, amqp_url: str) -> AsyncIterator[Brink]:
    async with AsyncExitStack() as stack:
        yield await start_brink(
            stack, database_url=database_url, amqp_url=amqp_url, scheduler_poll_seconds=0.2, rotation_csm=["ana", "ben"]
        )


async def send(brink: Brink, payload: Payload) -> None:
    runtime = brink.apps["outreach"].state.runtime
    await runtime.broker.publish(Envelope.wrap(payload, correlation_id="test-" + payload.TYPE, source="test"))


async def case_of(brink: Brink, account_id: str) -> dict | None:
    response = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"account_id": account_id})
    assert response.status_code == 200
    items = response.json()["items"]
    return items[0] if items else None


async def test_tasks_are_listed_completed_once_and_logged(brink: Brink) -> None:
    payload = diagnosis(root_cause="rocky_onboarding", account_owner="olga")
    await send(brink, payload)
    case = await eventually(lambda: case_of(brink, payload.account_id))
    first = case["tasks"][0]

    mine = await brink.outreach.get(
        "/v1/tasks", headers=brink.auth, params={"owner": "olga", "status": "open", "case_id": case["id"]}
    )
    assert [task["action"] for task in mine.json()["items"]] == ["call", "training_session"]
    soon = await brink.outreach.get(
        "/v1/tasks",
        headers=brink.auth,
        params={"case_id": case["id"], "due_before": first["due_at"].replace("+00:00", "Z")},
    )
    assert soon.json()["items"] == []
    overdue = await brink.outreach.get(
        "/v1/tasks", headers=brink.auth, params={"overdue": "true", "case_id": case["id"]}
    )
    assert overdue.json()["items"] == []

    done = await brink.outreach.post(
        f"/v1/tasks/{first['id']}/complete",
        headers=brink.auth,
        json={"result": "reached", "note": "training booked for Thursday"},
    )
    again = await brink.outreach.post(
        f"/v1/tasks/{first['id']}/complete", headers=brink.auth, json={"result": "declined"}
    )
    bad = await brink.outreach.post(f"/v1/tasks/{first['id']}/complete", headers=brink.auth, json={"result": "maybe"})
    missing = await brink.outreach.post("/v1/tasks/nope/complete", headers=brink.auth, json={"result": "reached"})

    assert done.status_code == 200 and done.json()["result"] == "reached" and done.json()["completed_by"] == "olga"
    assert again.status_code == 409 and "already completed" in again.json()["detail"]
    assert bad.status_code == 422 and missing.status_code == 404
    detail = (await brink.outreach.get(f"/v1/cases/{case['id']}", headers=brink.auth)).json()
    assert [event["kind"] for event in detail["events"]] == ["opened", "task_completed"]
    assert detail["first_touched_at"] is not None


async def test_a_withdrawal_closes_the_case_as_saved(brink: Brink) -> None:
    payload = diagnosis(root_cause="executive_mandate")
    await send(brink, payload)
    await eventually(lambda: case_of(brink, payload.account_id))
    await send(brink, withdrawal(payload))

    async def saved() -> dict | None:
        case = await case_of(brink, payload.account_id)
        return case if case and case["status"] == "saved" else None

    case = await eventually(saved)
    assert {task["status"] for task in case["tasks"]} == {"cancelled"}
    closed = await brink.outreach.post(f"/v1/cases/{case['id']}/outcome", headers=brink.auth, json={"outcome": "lost"})
    assert closed.status_code == 409 and "already closed as saved" in closed.json()["detail"]


async def test_an_outcome_recorded_by_hand_ends_the_case_and_shows_in_the_report(brink: Brink) -> None:
    payload = diagnosis(root_cause="known_issue", mrr_minor=12_300)
    await send(brink, payload)
    case = await eventually(lambda: case_of(brink, payload.account_id))

    response = await brink.outreach.post(
        f"/v1/cases/{case['id']}/outcome",
        headers=brink.auth,
        json={"outcome": "saved", "reason": "fixed the bug live on the call", "recorded_by": "maria"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "saved" and response.json()["events"][-1]["actor"] == "maria"
    assert {task["status"] for task in response.json()["tasks"]} == {"cancelled"}

    report = (await brink.outreach.get("/v1/reports/summary", headers=brink.auth)).json()
    known = next(row for row in report["by_root_cause"] if row["root_cause"] == "known_issue")
    assert known["saved"] >= 1 and known["revenue"]["saved"]["usd"] >= 12_300
    assert report["total"]["save_rate"] is not None and report["by_week"]
    unknown = await brink.outreach.post("/v1/cases/nope/outcome", headers=brink.auth, json={"outcome": "saved"})
    wrong = await brink.outreach.post(f"/v1/cases/{case['id']}/outcome", headers=brink.auth, json={"outcome": "won"})
    naive = await brink.outreach.get("/v1/reports/summary", headers=brink.auth, params={"since": "2026-11-01T00:00:00"})
    assert unknown.status_code == 404 and wrong.status_code == 422 and naive.status_code == 422

    metrics = await eventually(lambda: _gauge_line(brink))
    assert metrics


async def _gauge_line(brink: Brink) -> str | None:
    text = (await brink.outreach.get("/metrics")).text
    return next(
        (
            line
            for line in text.splitlines()
            if line.startswith('brink_cases{status="saved"}') and not line.endswith(" 0.0")
        ),
        None,
    )


async def test_outreach_routes_need_a_token(brink: Brink) -> None:
    for method, path in (
        ("get", "/v1/tasks"),
        ("post", "/v1/tasks/x/complete"),
        ("get", "/v1/reports/summary"),
        ("post", "/v1/cases/x/outcome"),
    ):
        response = await getattr(brink.outreach, method)(path)
        assert response.status_code == 401, path
