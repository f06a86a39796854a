"""Outreach's HTTP API with the services running on the real broker and database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime

import pytest

from services.outreach.people import add_person, find_by_email
from shared.db import transaction
from shared.events import Envelope, Payload
from tests.conftest import Brink, eventually, outreach_from_scratch, start_brink
from tests.outreach_helpers import diagnosis as diagnosis_at
from tests.outreach_helpers import withdrawal


def diagnosis(**fields: object):  # the services run on the wall clock here
    return diagnosis_at(now=datetime.now(UTC), **fields)


@pytest.fixture
async def brink(database_url: str, amqp_url: str) -> AsyncIterator[Brink]:
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(outreach_from_scratch(database_url))
        yield await start_brink(
            stack,
            database_url=database_url,
            amqp_url=amqp_url,
            scheduler_poll_seconds=0.2,
            gauge_refresh_seconds=0.2,
            rotation_csm=["ana", "ben"],
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
    # Nobody is set up (the fixture starts from no people), so the owner named by the account is taken as given.
    owner = "olga"
    assert first["owner"] == owner

    mine = await brink.outreach.get(
        "/v1/tasks", headers=brink.auth, params={"owner": owner, "status": "open", "case_id": case["id"]}
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

    assert done.status_code == 200 and done.json()["result"] == "reached" and done.json()["completed_by"] == owner
    assert again.status_code == 409 and "already completed" in again.json()["detail"]
    assert bad.status_code == 422 and missing.status_code == 404
    detail = (await brink.outreach.get(f"/v1/cases/{case['id']}", headers=brink.auth)).json()
    assert [event["kind"] for event in detail["events"]] == ["opened", "task_completed"]
    assert detail["first_touched_at"] is not None


async def _closed(brink: Brink, account_id: str) -> dict | None:
    case = await case_of(brink, account_id)
    return case if case and case["status"] != "open" else None


async def test_a_withdrawal_after_a_contact_is_a_pending_save_and_before_any_an_unprompted_stay(brink: Brink) -> None:
    worked, unprompted = diagnosis(root_cause="executive_mandate"), diagnosis(root_cause="executive_mandate")
    for payload in (worked, unprompted):
        await send(brink, payload)
    case = await eventually(lambda: case_of(brink, worked.account_id))
    await eventually(lambda: case_of(brink, unprompted.account_id))
    reached = await brink.outreach.post(
        f"/v1/tasks/{case['tasks'][0]['id']}/complete", headers=brink.auth, json={"result": "reached"}
    )
    assert reached.status_code == 200
    for payload in (worked, unprompted):
        await send(brink, withdrawal(payload))

    saved = await eventually(lambda: _closed(brink, worked.account_id))
    stayed = await eventually(lambda: _closed(brink, unprompted.account_id))
    assert (saved["status"], saved["save_status"]) == ("saved", "pending")
    assert (stayed["status"], stayed["save_status"]) == ("stayed_unprompted", None)
    assert {task["status"] for task in stayed["tasks"]} == {"cancelled"}
    closed = await brink.outreach.post(
        f"/v1/cases/{saved['id']}/outcome",
        headers=brink.auth,
        json={"outcome": "lost", "confirmed_root_cause": "unknown"},
    )
    assert closed.status_code == 409 and "already closed as saved" in closed.json()["detail"]


async def test_closing_by_hand_records_the_confirmed_root_cause_and_refuses_what_the_record_contradicts(
    brink: Brink,
) -> None:
    payload = diagnosis(root_cause="known_issue", mrr_minor=12_300)
    await send(brink, payload)
    case = await eventually(lambda: case_of(brink, payload.account_id))
    url = f"/v1/cases/{case['id']}/outcome"

    untouched = await brink.outreach.post(
        url, headers=brink.auth, json={"outcome": "saved", "confirmed_root_cause": "known_issue"}
    )
    cause = await brink.outreach.post(url, headers=brink.auth, json={"outcome": "lost", "confirmed_root_cause": "bad"})
    missing = await brink.outreach.post(url, headers=brink.auth, json={"outcome": "lost"})
    outcome = await brink.outreach.post(
        url, headers=brink.auth, json={"outcome": "won", "confirmed_root_cause": "unknown"}
    )
    unknown = await brink.outreach.post(
        "/v1/cases/nope/outcome", headers=brink.auth, json={"outcome": "lost", "confirmed_root_cause": "unknown"}
    )
    assert untouched.status_code == 422 and untouched.json()["detail"].startswith("outcome: saved needs")
    for refused, field in ((cause, "confirmed_root_cause"), (missing, "confirmed_root_cause"), (outcome, "outcome")):
        assert refused.status_code == 422 and [e["field"] for e in refused.json()["errors"]] == [field]
    assert unknown.status_code == 404
    still = (await brink.outreach.get(f"/v1/cases/{case['id']}", headers=brink.auth)).json()
    assert still["status"] == "open" and [event["kind"] for event in still["events"]] == ["opened"]

    await brink.outreach.post(
        f"/v1/tasks/{case['tasks'][0]['id']}/complete", headers=brink.auth, json={"result": "reached"}
    )
    response = await brink.outreach.post(
        url,
        headers=brink.auth,
        json={
            "outcome": "saved",
            "confirmed_root_cause": "poor_implementation",
            "reason": "the bug was a training gap; coached them live",
            "recorded_by": "maria",
        },
    )
    assert response.status_code == 200, response.text
    closed = response.json()
    assert (closed["status"], closed["save_status"], closed["confirmed_root_cause"], closed["root_cause"]) == (
        "saved",
        "pending",
        "poor_implementation",
        "known_issue",
    )
    assert closed["events"][-1]["actor"] == "maria" and {task["status"] for task in closed["tasks"]} >= {"cancelled"}
    again = await brink.outreach.post(
        url, headers=brink.auth, json={"outcome": "lost", "confirmed_root_cause": "unknown"}
    )
    assert again.status_code == 409

    report = (await brink.outreach.get("/v1/reports/summary", headers=brink.auth)).json()
    confirmed = {group["value"]: group for group in report["by_confirmed_root_cause"]}
    assert confirmed["poor_implementation"]["saved"] >= 1
    assert confirmed["poor_implementation"]["revenue"]["saved_pending"]["usd"] >= 12_300
    table = await brink.outreach.get("/v1/reports/summary", headers=brink.auth, params={"format": "csv"})
    assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
    assert table.text.startswith("cut,group,cases,open,saved,stayed_unprompted,lost,moved_on,reverted,save_rate,")
    assert "\nconfirmed_root_cause,poor_implementation," in table.text
    xml = await brink.outreach.get("/v1/reports/summary", headers=brink.auth, params={"format": "xml"})
    naive = await brink.outreach.get("/v1/reports/summary", headers=brink.auth, params={"since": "2026-11-01T00:00:00"})
    assert xml.status_code == 422 and [e["field"] for e in xml.json()["errors"]] == ["query.format"]
    assert naive.status_code == 422

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
        ("put", "/v1/people/ana@example.com/notifications"),
    ):
        response = await getattr(brink.outreach, method)(path)
        assert response.status_code == 401, path


async def test_a_person_chooses_how_to_be_told(brink: Brink) -> None:
    runtime = brink.apps["outreach"].state.runtime
    async with transaction(runtime.sessions) as session:
        await add_person(session, email="Ana@Example.com", name="Ana", role="csm", now=datetime.now(UTC))
    path = "/v1/people/ana@example.com/notifications"

    answer = await brink.outreach.put(path, headers=brink.auth, json={"channels": ["slack_dm"], "daily_digest": False})
    assert answer.status_code == 200 and answer.json() == {"channels": ["slack_dm"], "daily_digest": False}
    async with runtime.sessions() as session:
        ana = await find_by_email(session, "ana@example.com")
    assert ana is not None and (ana.notify_channels, ana.daily_digest) == ("slack_dm", False)

    refused = await brink.outreach.put(path, headers=brink.auth, json={"channels": ["pager"]})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "channels.0"
    unknown = await brink.outreach.put(
        "/v1/people/nobody@example.com/notifications", headers=brink.auth, json={"channels": []}
    )
    assert unknown.status_code == 404 and "nobody@example.com" in unknown.json()["detail"]
