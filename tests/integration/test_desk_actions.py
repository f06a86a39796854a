"""Every action on a case, on the desk and on /v1/: who did it in the history, intervention.logged only for an
attempt on the customer, 403 for a case you may not act on, 409 for a stale form; My work and its paging; the
discovery answers sent to diagnosis over HTTP, which diagnoses the case again."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from services.outreach.cases import open_or_update_case
from services.outreach.models import Task, Timer, outbox
from shared.db import transaction
from tests.conftest import Brink, eventually, start_brink
from tests.desk_helpers import CSRF, add_person, case_id_of, sign_in, wipe
from tests.outreach_helpers import FakeClock, diagnosis


class Desk:
    def __init__(self, brink: Brink) -> None:
        self.brink = brink
        self.app = brink.apps["outreach"]
        self.runtime = self.app.state.runtime

    def browser(self, address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="https://outreach")

    async def person(self, email: str) -> tuple[httpx.AsyncClient, str]:
        client = self.browser(f"10.1.0.{len(email)}")
        return client, await sign_in(client, email)

    async def history(self, case_id: str) -> list[dict[str, Any]]:
        response = await self.brink.outreach.get(f"/v1/cases/{case_id}", headers=self.brink.auth)
        return response.json()["events"]

    async def tasks(self, case_id: str) -> list[Task]:
        async with self.runtime.sessions() as session:
            rows = await session.execute(select(Task).where(Task.case_id == case_id).order_by(Task.position))
            return list(rows.scalars())

    async def interventions(self, case_id: str) -> list[str]:
        async with self.runtime.sessions() as session:
            rows = await session.execute(select(outbox.c.body).where(outbox.c.event_type == "intervention.logged"))
            return [body for (body,) in rows if case_id in body]


@pytest.fixture
async def desk(database_url: str, amqp_url: str) -> AsyncIterator[Desk]:
    await wipe(database_url)
    async with AsyncExitStack() as stack:
        brink = await start_brink(stack, database_url=database_url, amqp_url=amqp_url, scheduler_poll_seconds=0.2)
        desk = Desk(brink)
        # Answers go to diagnosis over HTTP: here the diagnosis app itself, served in-process.
        desk.app.state.desk.diagnosis = await stack.enter_async_context(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=brink.apps["diagnosis"]),
                base_url="http://diagnosis",
                headers=brink.auth,
            )
        )
        for email, role, manager in (
            ("mia@example.com", "cs_manager", None),
            ("olga@example.com", "csm", "mia@example.com"),
            ("pete@example.com", "csm", "mia@example.com"),
            ("rui@example.com", "csm", None),
        ):
            await add_person(desk.runtime, email, role=role, manager=manager)
        yield desk
    await wipe(database_url)  # people set up here would change how later tests' cases are routed


async def report(desk: Desk, customer: str, *, owner: str, comment: str = "Nobody used it") -> str:
    response = await desk.brink.intake.post(
        "/v1/cancellations",
        headers=desk.brink.auth,
        json={"customer_id": customer, "account_owner": owner, "feedback": "unused", "comment": comment},
    )
    assert response.status_code == 202, response.text
    return await case_id_of(desk.brink.outreach, f"api:{customer}")


async def test_every_desk_action_is_in_the_history_with_who_did_it(desk: Desk) -> None:
    case_id = await report(desk, "acme-1", owner="olga@example.com")
    olga, csrf = await desk.person("olga@example.com")
    first, second, *_ = [task for task in await desk.tasks(case_id) if task.owner == "olga@example.com"]
    base = f"/desk/cases/{case_id}"

    done = await olga.post(
        f"{base}/tasks/{first.id}/complete", data={"csrf": csrf, "result": "reached", "note": "Booked"}
    )
    assert done.status_code == 303
    snoozed = await olga.post(
        f"{base}/tasks/{second.id}/snooze",
        data={
            "csrf": csrf,
            "until": (second.due_at + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
            "reason": "On leave",
        },
    )
    assert snoozed.status_code == 303, snoozed.text
    note = await olga.post(f"{base}/notes", data={"csrf": csrf, "text": "Their CFO joins the next call"})
    assert note.status_code == 303
    moved = await olga.post(f"{base}/tasks/{second.id}/reassign", data={"csrf": csrf, "to": "pete@example.com"})
    assert moved.status_code == 303
    switched = await olga.post(
        f"{base}/playbook", data={"csrf": csrf, "playbook": "rocky_onboarding", "reason": "Training"}
    )
    assert switched.status_code == 303
    handed = await olga.post(f"{base}/reassign", data={"csrf": csrf, "to": "rui@example.com"})
    assert handed.status_code == 303

    history = {event["kind"]: event for event in await desk.history(case_id)}
    for kind in (
        "task_completed",
        "task_snoozed",
        "note_added",
        "task_reassigned",
        "playbook_switched",
        "case_reassigned",
    ):
        assert history[kind]["actor"] == "olga@example.com", kind
    assert history["task_snoozed"]["detail"]["reason"] == "On leave"
    assert history["note_added"]["detail"]["text"] == "Their CFO joins the next call"
    assert history["task_reassigned"]["detail"] == {
        "task_id": second.id,
        "before": "olga@example.com",
        "after": "pete@example.com",
    }
    assert history["playbook_switched"]["detail"]["after"] == "rocky_onboarding"
    assert history["case_reassigned"]["detail"]["after"] == "rui@example.com"
    # Only the completed task was an attempt on the customer.
    [logged] = await eventually(lambda: desk.interventions(case_id))
    assert '"performed_by":"olga@example.com"' in logged.replace(" ", "")

    page = (await olga.get(base)).text  # olga handed the case on: she may read it, not act on it any more
    assert "Act on this case" not in page and "Olga" in page
    closed = await olga.post(
        f"{base}/close", data={"csrf": csrf, "outcome": "lost", "confirmed_root_cause": "wrong_fit", "reason": "x"}
    )
    assert closed.status_code == 403

    rui, rui_csrf = await desk.person("rui@example.com")
    closed = await rui.post(
        f"{base}/close",
        data={"csrf": rui_csrf, "outcome": "lost", "confirmed_root_cause": "wrong_fit", "reason": "Bought a parakeet"},
    )
    assert closed.status_code == 303
    ending = next(event for event in await desk.history(case_id) if event["kind"] == "closed")
    assert ending["actor"] == "rui@example.com" and ending["detail"]["reason"] == "Bought a parakeet"


async def test_a_snoozed_task_moves_its_escalation_and_a_stale_form_is_409_on_the_page(desk: Desk) -> None:
    case_id = await report(desk, "acme-2", owner="olga@example.com")
    olga, csrf = await desk.person("olga@example.com")
    task = next(task for task in await desk.tasks(case_id) if task.owner == "olga@example.com")
    async with desk.runtime.sessions() as session:
        before = (await session.execute(select(Timer.due_at).where(Timer.task_id == task.id))).scalars().all()
    until = (task.due_at + timedelta(days=2)).replace(second=0, microsecond=0)
    answer = await olga.post(
        f"/desk/cases/{case_id}/tasks/{task.id}/snooze",
        data={"csrf": csrf, "until": until.strftime("%Y-%m-%dT%H:%M"), "reason": "Customer on holiday"},
    )
    assert answer.status_code == 303
    async with desk.runtime.sessions() as session:
        after = (await session.execute(select(Timer.due_at).where(Timer.task_id == task.id))).scalars().all()
        moved = await session.get(Task, task.id)
    assert moved is not None and moved.due_at == until and moved.snooze_reason == "Customer on holiday"
    assert before and sorted(old + (until - task.due_at) for old in before) == sorted(after)  # the ladder waits

    past = await olga.post(
        f"/desk/cases/{case_id}/tasks/{task.id}/snooze",
        data={"csrf": csrf, "until": "2020-01-01T09:00", "reason": "oops"},
    )
    assert past.status_code == 422 and "snooze to a moment in the future" in past.text

    # Someone completes the task through the API while olga's page is open; her form is then stale.
    api = await desk.brink.outreach.post(
        f"/v1/tasks/{task.id}/complete", headers=desk.brink.auth, json={"result": "reached"}
    )
    assert api.status_code == 200
    stale = await olga.post(
        f"/desk/cases/{case_id}/tasks/{task.id}/snooze",
        data={"csrf": csrf, "until": (until + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"), "reason": "later"},
    )
    assert stale.status_code == 409 and "already completed" in stale.text and 'role="alert"' in stale.text


async def test_the_api_mirrors_the_desk(desk: Desk) -> None:
    case_id = await report(desk, "acme-3", owner="olga@example.com")
    task = next(task for task in await desk.tasks(case_id) if task.status == "open")
    auth, api = desk.brink.auth, desk.brink.outreach
    until = (task.due_at + timedelta(days=1)).isoformat()
    assert (
        await api.post(
            f"/v1/tasks/{task.id}/snooze", headers=auth, json={"until": until, "reason": "Holiday", "by": "crm"}
        )
    ).status_code == 200
    naive = await api.post(
        f"/v1/tasks/{task.id}/snooze", headers=auth, json={"until": "2030-01-01T00:00:00", "reason": "x"}
    )
    assert naive.status_code == 422 and "until" in naive.text
    assert (
        await api.post(f"/v1/tasks/{task.id}/reassign", headers=auth, json={"to": "pete@example.com", "by": "crm"})
    ).status_code == 200
    nobody = await api.post(f"/v1/tasks/{task.id}/reassign", headers=auth, json={"to": "ghost@example.com"})
    assert nobody.status_code == 422 and "no active person" in nobody.json()["detail"]
    assert (
        await api.post(f"/v1/cases/{case_id}/notes", headers=auth, json={"text": "From the CRM", "by": "crm"})
    ).status_code == 200
    unknown = await api.post(f"/v1/cases/{case_id}/playbook", headers=auth, json={"playbook": "charm_offensive"})
    assert unknown.status_code == 422 and "no playbook is called" in unknown.json()["detail"]
    switched = await api.post(
        f"/v1/cases/{case_id}/playbook", headers=auth, json={"playbook": "known_issue", "by": "crm"}
    )
    assert switched.status_code == 200 and switched.json()["playbook"] == "known_issue"
    handed = await api.post(f"/v1/cases/{case_id}/reassign", headers=auth, json={"to": "rui@example.com", "by": "crm"})
    assert handed.status_code == 200 and handed.json()["owner"] == "rui@example.com"
    assert (await api.post("/v1/cases/no-such-case/notes", headers=auth, json={"text": "x"})).status_code == 404
    kinds = [event["kind"] for event in handed.json()["events"] if event["actor"] == "crm"]
    assert kinds == ["task_snoozed", "task_reassigned", "note_added", "playbook_switched", "case_reassigned"]
    assert await desk.interventions(case_id) == []  # none of these was an attempt on the customer

    closed = await api.post(
        f"/v1/cases/{case_id}/outcome", headers=auth, json={"outcome": "lost", "confirmed_root_cause": "known_issue"}
    )
    assert closed.status_code == 200
    late = await api.post(f"/v1/cases/{case_id}/reassign", headers=auth, json={"to": "pete@example.com"})
    assert late.status_code == 409 and "was closed as lost" in late.json()["detail"]


async def test_my_work_is_mine_overdue_first_a_managers_team_and_pages_without_a_ceiling(desk: Desk) -> None:
    state = desk.app.state
    two_days_ago = FakeClock(state.clock.now() - timedelta(days=2))
    async with transaction(desk.runtime.sessions) as session:
        for number in range(53):  # opened two days ago (the clock is the wall clock): their first steps are overdue
            payload = diagnosis(
                account_owner="pete@example.com",
                account_id=f"stripe:cus_page{number:03d}",
                now=state.clock.now() - timedelta(days=2),
            )
            await open_or_update_case(session, payload, policy=state.policy, clock=two_days_ago)
    olga_case = await report(desk, "acme-4", owner="olga@example.com", comment="Olga's customer")

    olga, _ = await desk.person("olga@example.com")
    mine = (await olga.get("/desk")).text
    assert "Olga&#39;s customer" not in mine  # the comment is not on the list; the customer is
    assert "api:acme-4" in mine and "cus_page" not in mine
    assert "Whose" not in mine  # no team: only her own

    pete, _ = await desk.person("pete@example.com")
    first_page = (await pete.get("/desk")).text
    total = int(re.search(r"(\d+) tasks", first_page).group(1))
    pages = -(-total // 50)
    assert total > 53 and f"Page 1 of {pages}" in first_page and "showing 1–50" in first_page
    last_page = (await pete.get("/desk", params={"page": pages})).text
    assert f"Page {pages} of {pages}" in last_page and "← Previous" in last_page and "Next →" not in last_page
    assert f"showing {(pages - 1) * 50 + 1}–{total}" in last_page
    found = (await pete.get("/desk", params={"q": "CUS_PAGE007"})).text
    assert "stripe:cus_page007" in found and "stripe:cus_page008" not in found

    # Olga's tasks are due later; Pete's were due before now (opened two days ago).
    assert "Nothing here is overdue" in (await olga.get("/desk", params={"show": "overdue"})).text
    mia, _ = await desk.person("mia@example.com")
    assert "Whose" in (await mia.get("/desk")).text
    team = (await mia.get("/desk", params={"scope": "team", "q": "acme-4"})).text
    assert "api:acme-4" in team and "Olga" in team
    overdue = (await mia.get("/desk", params={"scope": "team", "show": "overdue"})).text
    assert "Overdue by" in overdue and "stripe:cus_page" in overdue and "api:acme-4" not in overdue
    assert "No" not in re.search(r'<p class="count".*?</p>', overdue, re.S).group(0)
    assert olga_case


async def test_acting_on_someone_elses_case_is_403_and_the_cases_list_pages(desk: Desk) -> None:
    case_id = await report(desk, "acme-5", owner="olga@example.com")
    rui, csrf = await desk.person("rui@example.com")
    page = (await rui.get(f"/desk/cases/{case_id}")).text
    assert "Act on this case" not in page and "You can read this case" in page
    refused = await rui.post(f"/desk/cases/{case_id}/notes", data={"csrf": csrf, "text": "mine now"})
    assert refused.status_code == 403 and "not yours" in refused.text
    # The refusal is a desk page: the navigation, who is signed in, and a way back to the case.
    nav = re.search(r'<nav aria-label="Desk">.*?</nav>', refused.text, re.S)
    assert nav and 'href="/desk/cases"' in nav.group(0) and "Signed in as Rui" in refused.text
    assert f'<a href="/desk/cases/{case_id}">Back to the case</a>' in refused.text
    mia, mia_csrf = await desk.person("mia@example.com")  # olga's manager may
    assert (await mia.post(f"/desk/cases/{case_id}/notes", data={"csrf": mia_csrf, "text": "Seen"})).status_code == 303
    listed = (await rui.get("/desk/cases", params={"q": "acme-5"})).text
    assert "api:acme-5" in listed and "1 case," in listed


async def test_discovery_answers_go_to_diagnosis_and_the_case_is_diagnosed_again(desk: Desk) -> None:
    case_id = await report(
        desk, "acme-6", owner="olga@example.com", comment="Nobody on the team was asked before the purchase"
    )
    olga, csrf = await desk.person("olga@example.com")
    page = (await olga.get(f"/desk/cases/{case_id}")).text
    selects = re.findall(r'<select id="answer-([a-z_]+)"', page)
    texts = re.findall(r'<input id="answer-([a-z_]+)"', page)
    assert selects and texts, "the diagnosis asks questions with choices and in free text"
    first_choice = re.search(rf'id="answer-{selects[0]}".*?<option value="([^"]+)">', page, re.S).group(1)
    choices = {selects[0]: first_choice, texts[0]: "The ops lead, who was never asked"}
    version_before = (await desk.brink.outreach.get(f"/v1/cases/{case_id}", headers=desk.brink.auth)).json()[
        "diagnosis_version"
    ]

    bad = await olga.post(f"/desk/cases/{case_id}/answers", data={"csrf": csrf})
    assert bad.status_code == 422 and "Answer at least one question" in bad.text
    sent = await olga.post(
        f"/desk/cases/{case_id}/answers",
        data={"csrf": csrf, **{f"answer-{question}": value for question, value in choices.items()}},
    )
    assert sent.status_code == 303 and sent.headers["location"].endswith("done=answered#unknowns")

    async def rediagnosed() -> dict[str, Any] | None:
        case = (await desk.brink.outreach.get(f"/v1/cases/{case_id}", headers=desk.brink.auth)).json()
        return case if case["diagnosis_version"] > version_before else None

    case = await eventually(rediagnosed, timeout=20)
    assert any(event["kind"] == "diagnosis_updated" for event in case["events"])
    assert CSRF.search((await olga.get(f"/desk/cases/{case_id}")).text)
