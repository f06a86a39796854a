"""The desk over HTTP (no browser): sign-in, the session cookie, CSRF, the queue's order and filters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx
import pytest
from sqlalchemy import select

from services.outreach.models import Task, outbox
from tests.conftest import TOKEN, Brink, eventually, start_brink
from tests.desk_helpers import PASSWORD, add_person, case_id_of, publish, rich_diagnosis, sign_in, wipe
from tests.outreach_helpers import withdrawal


@pytest.fixture
async def brink(database_url: str, amqp_url: str) -> AsyncIterator[Brink]:
    await wipe(database_url)
    async with AsyncExitStack() as stack:
        yield await start_brink(stack, database_url=database_url, amqp_url=amqp_url, scheduler_poll_seconds=0.2)
    await wipe(database_url)  # people set up here would change how later tests' cases are routed


@pytest.fixture
async def desk(brink: Brink) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client: https, so the Secure cookie is kept and sent, and no redirects followed."""
    transport = httpx.ASGITransport(app=brink.apps["outreach"])
    async with httpx.AsyncClient(transport=transport, base_url="https://outreach") as client:
        yield client


async def test_sign_in_takes_a_person_not_a_token_and_sets_a_safe_cookie(brink: Brink, desk: httpx.AsyncClient) -> None:
    await add_person(brink.apps["outreach"].state.runtime, "dana@example.com", name="Dana")
    token = await desk.post("/desk/signin", data={"token": TOKEN, "next": "/desk"})
    assert token.status_code == 422 and "Enter your email and your password" in token.text
    as_token = await desk.post("/desk/signin", data={"email": "dana@example.com", "password": TOKEN})
    assert as_token.status_code == 401 and "do not match" in as_token.text
    assert "set-cookie" not in as_token.headers and (await desk.get("/desk")).status_code == 303

    right = await desk.post(
        "/desk/signin", data={"email": "Dana@Example.com", "password": PASSWORD, "next": "/desk/results"}
    )
    assert right.status_code == 303 and right.headers["location"] == "/desk/results"
    cookie = right.headers["set-cookie"].lower()
    for attribute in ("httponly", "secure", "samesite=lax", "max-age=43200", "path=/desk"):
        assert attribute in cookie
    assert PASSWORD.lower() not in cookie
    page = await desk.get("/desk")
    assert page.status_code == 200 and "Signed in as Dana" in page.text


async def test_a_nul_character_in_a_sign_in_is_refused_like_any_wrong_password(
    brink: Brink, desk: httpx.AsyncClient
) -> None:
    """PostgreSQL cannot hold NUL: a sign-in carrying one was a 500; it is an ordinary refusal."""
    await add_person(brink.apps["outreach"].state.runtime, "dana@example.com", name="Dana")
    for email in ("dana@example.com\x00", "da\x00na@example.com"):
        response = await desk.post("/desk/signin", data={"email": email, "password": PASSWORD + "x"})
        assert response.status_code == 401, (email, response.status_code)


async def test_pages_need_the_session_cookie(desk: httpx.AsyncClient) -> None:
    for path in ("/desk", "/desk/cases/some-id", "/desk/results", "/desk/flow"):
        response = await desk.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/desk/signin?next=%2Fdesk")
    assert (await desk.get("/desk/flow/panel")).status_code == 401
    desk.cookies.set("brink_desk", "forged.value.here", domain="outreach", path="/desk")
    assert (await desk.get("/desk")).status_code == 303
    assert (await desk.get("/desk/signin?next=https://evil.example/")).text.count('value="/desk"') == 1


async def test_completing_a_task_needs_the_session_csrf_token_and_logs_the_intervention(
    brink: Brink, desk: httpx.AsyncClient
) -> None:
    runtime = brink.apps["outreach"].state.runtime
    payload = rich_diagnosis(
        customer="Acme GmbH", root_cause="rocky_onboarding", owner="olga", priority=60, mrr_minor=49_000
    )
    await publish(runtime, payload)
    case_id = await case_id_of(brink.outreach, payload.account_id)
    await add_person(runtime, "dana@example.com", name="Dana", role="admin")
    csrf = await sign_in(desk)
    async with runtime.sessions() as session:
        task = (
            (await session.execute(select(Task).where(Task.case_id == case_id).order_by(Task.position)))
            .scalars()
            .first()
        )
    url = f"/desk/cases/{case_id}/tasks/{task.id}/complete"

    missing = await desk.post(url, data={"result": "reached"})
    wrong = await desk.post(url, data={"result": "reached", "csrf": csrf[:-2] + "zz"})
    assert missing.status_code == 403 and wrong.status_code == 403 and "Nothing was changed" in wrong.text
    bad_result = await desk.post(url, data={"result": "maybe", "csrf": csrf})
    assert bad_result.status_code == 422 and "Choose a result" in bad_result.text

    done = await desk.post(url, data={"result": "reached", "note": "booked a training", "csrf": csrf})
    assert done.status_code == 303 and done.headers["location"].startswith(f"/desk/cases/{case_id}?done=")
    page = await desk.get(done.headers["location"])
    assert "booked a training" in page.text and "Task recorded" in page.text
    again = await desk.post(url, data={"result": "declined", "csrf": csrf})
    assert again.status_code == 409 and "already completed" in again.text

    async def logged() -> list:
        async with runtime.sessions() as session:
            rows = await session.execute(select(outbox.c.body).where(outbox.c.event_type == "intervention.logged"))
            return [body for (body,) in rows if case_id in body]

    [event] = await eventually(logged)
    assert '"performed_by":"dana@example.com"' in event.replace(" ", "")

    signed_out = await desk.post("/desk/signout", data={"csrf": csrf})
    assert signed_out.status_code == 303 and (await desk.get("/desk")).status_code == 303


async def test_the_queue_is_in_priority_order_and_filters_by_owner_root_cause_and_status(
    brink: Brink, desk: httpx.AsyncClient
) -> None:
    runtime = brink.apps["outreach"].state.runtime
    seeds = [
        rich_diagnosis(customer="Low Ltd", root_cause="rocky_onboarding", owner="olga", priority=20, mrr_minor=9_000),
        rich_diagnosis(customer="High Inc", root_cause="known_issue", owner="pete", priority=90, mrr_minor=250_000),
        rich_diagnosis(customer="Mid SA", root_cause="rocky_onboarding", owner="pete", priority=55, mrr_minor=60_000),
    ]
    for seed in seeds:
        await publish(runtime, seed)
    for seed in seeds:
        await case_id_of(brink.outreach, seed.account_id)
    await add_person(runtime, "dana@example.com")
    await sign_in(desk)

    def customers(html: str) -> list[str]:
        return [name for name in ("High Inc", "Mid SA", "Low Ltd") if name in html]

    everything = (await desk.get("/desk/cases")).text
    positions = [everything.index(name) for name in ("High Inc", "Mid SA", "Low Ltd")]
    assert positions == sorted(positions)
    assert customers((await desk.get("/desk/cases", params={"owner": "pete"})).text) == ["High Inc", "Mid SA"]
    assert customers((await desk.get("/desk/cases", params={"root_cause": "rocky_onboarding"})).text) == [
        "Mid SA",
        "Low Ltd",
    ]
    assert customers(
        (await desk.get("/desk/cases", params={"owner": "pete", "root_cause": "rocky_onboarding"})).text
    ) == ["Mid SA"]
    assert customers((await desk.get("/desk/cases", params={"status": "saved"})).text) == []
    assert "No cases match" in (await desk.get("/desk/cases", params={"status": "lost"})).text


async def test_cases_tied_on_version_are_filtered_in_the_api_and_the_desk(
    brink: Brink, desk: httpx.AsyncClient
) -> None:
    runtime = brink.apps["outreach"].state.runtime
    # Chargebee's versions are milliseconds: past a 32-bit integer.
    version = 1_790_000_000_000
    tied, settled, plain = (
        rich_diagnosis(customer=name, root_cause="known_issue", owner=None, priority=50, mrr_minor=9_000)
        for name in ("Tied AG", "Settled BV", "Plain Oy")
    )
    tied, settled = (seed.model_copy(update={"state_version": version}) for seed in (tied, settled))
    for seed in (tied, settled, plain):
        await publish(runtime, seed)
    ids = {seed.customer_name: await case_id_of(brink.outreach, seed.account_id) for seed in (tied, settled, plain)}
    for seed in (tied, settled):  # withdrawn at the very version of the cancellation: which came last is unknown
        await publish(runtime, withdrawal(seed, state_version=version))

    async def tie_recorded(case_id: str) -> bool:
        case = (await brink.outreach.get(f"/v1/cases/{case_id}", headers=brink.auth)).json()
        return any(event["kind"] == "same_version_tie" for event in case["events"])

    for name in ("Tied AG", "Settled BV"):
        await eventually(lambda name=name: tie_recorded(ids[name]))
    # A newer cancellation of Settled BV settles its tie: the customer is leaving after all.
    await publish(runtime, settled.model_copy(update={"state_version": version + 1, "diagnosis_version": 2}))

    async def listed(tied_filter: str | None) -> list[str]:
        params = {} if tied_filter is None else {"tied": tied_filter}
        answer = await brink.outreach.get("/v1/cases", headers=brink.auth, params=params)
        assert answer.status_code == 200
        return sorted(case["customer_name"] for case in answer.json()["items"])

    async def settled_moved_on() -> bool:
        case = (await brink.outreach.get(f"/v1/cases/{ids['Settled BV']}", headers=brink.auth)).json()
        return case["state_version"] == version + 1

    await eventually(settled_moved_on)
    assert await listed("true") == ["Tied AG"]
    every = (await brink.outreach.get("/v1/cases", headers=brink.auth)).json()["items"]
    assert {case["customer_name"]: case["tied"] for case in every} == {
        "Tied AG": True,
        "Settled BV": False,
        "Plain Oy": False,
    }
    for name, expected in (("Tied AG", True), ("Settled BV", False)):
        one = (await brink.outreach.get(f"/v1/cases/{ids[name]}", headers=brink.auth)).json()
        assert one["tied"] is expected
    assert await listed("false") == ["Plain Oy", "Settled BV"]
    assert len(await listed(None)) == 3  # no filter: every case
    bad = await brink.outreach.get("/v1/cases", headers=brink.auth, params={"tied": "maybe"})
    assert bad.status_code == 422 and "tied" in str(bad.json()["errors"])

    await add_person(runtime, "dana@example.com")
    await sign_in(desk)
    page = (await desk.get("/desk/cases", params={"tied": "yes"})).text
    assert "Tied AG" in page and "Settled BV" not in page and "Plain Oy" not in page
    assert 'value="yes" selected' in page
    everyone = (await desk.get("/desk/cases")).text
    assert all(name in everyone for name in ids)
    tied_page = (await desk.get(f"/desk/cases/{ids['Tied AG']}")).text
    assert "Tied on billing version" in tied_page and "close the case" in tied_page and "next event" in tied_page
    assert "Tied on billing version" not in (await desk.get(f"/desk/cases/{ids['Settled BV']}")).text


async def test_results_draw_the_report_and_flow_shows_queues_and_the_outbox(
    brink: Brink, desk: httpx.AsyncClient
) -> None:
    runtime = brink.apps["outreach"].state.runtime
    payload = rich_diagnosis(customer="Saved Co", root_cause="known_issue", owner="pete", priority=50, mrr_minor=30_000)
    await publish(runtime, payload)
    case_id = await case_id_of(brink.outreach, payload.account_id)
    case = (await brink.outreach.get(f"/v1/cases/{case_id}", headers=brink.auth)).json()
    reached = await brink.outreach.post(
        f"/v1/tasks/{case['tasks'][0]['id']}/complete", headers=brink.auth, json={"result": "reached"}
    )
    assert reached.status_code == 200
    closed = await brink.outreach.post(
        f"/v1/cases/{case_id}/outcome",
        headers=brink.auth,
        json={"outcome": "saved", "confirmed_root_cause": "known_issue"},
    )
    assert closed.status_code == 200
    await add_person(runtime, "dana@example.com")
    await sign_in(desk)

    results = (await desk.get("/desk/results")).text
    assert results.count("<svg") == 4 and "100%" in results and "300.00 USD" in results

    panel = await desk.get("/desk/flow/panel")
    assert panel.status_code == 200 and "Content-Security-Policy" in panel.headers
    rows = {row.split("</code>")[0]: row for row in panel.text.split("<code>")[1:]}
    assert '<td class="num">1</td>' in rows["outreach.diagnoses"]  # ready 0, one consumer
    assert "outreach outbox" in panel.text and "intake outbox" in panel.text
