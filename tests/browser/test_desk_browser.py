"""The desk in a real browser: sign in, find a case, complete a task, watch the timeline change; a screenshot of
every page lands in test-artifacts/desk/."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.outreach.app import build_app as build_outreach
from services.outreach.desk.settings import DeskSettings
from services.outreach.settings import OutreachSettings
from shared.db import make_engine, make_sessionmaker
from shared.events import CancellationWithdrawn, Envelope
from shared.messaging import Broker
from tests.browser.conftest import ROUND_THE_CLOCK, serve
from tests.conftest import TOKEN, settings_for
from tests.desk_helpers import PASSWORD, add_person, case_id_of, rich_diagnosis, wipe
from tests.outreach_helpers import MovableClock

LAPTOP = {"width": 1366, "height": 768}


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def empty_outreach(postgres_url: str) -> None:
    await wipe(postgres_url)


@pytest.fixture
def brink_urls(postgres_url: str, amqp_url: str, clock: MovableClock, empty_outreach: None) -> Iterator[dict[str, str]]:
    """Intake and outreach served over real HTTP, on PostgreSQL and RabbitMQ; the desk asks intake for its outbox."""
    with ExitStack() as stack:
        intake = stack.enter_context(
            serve(build_intake(settings_for(IntakeSettings, database_url=postgres_url, amqp_url=amqp_url)))
        )
        desk_settings = DeskSettings(_env_file=None, service_urls=[f"intake={intake}"], refresh_seconds=2)
        outreach = stack.enter_context(
            serve(
                build_outreach(
                    settings_for(
                        OutreachSettings,
                        database_url=postgres_url,
                        amqp_url=amqp_url,
                        scheduler_poll_seconds=0.2,
                        **ROUND_THE_CLOCK,
                    ),
                    clock=clock,
                    desk_settings=desk_settings,
                )
            )
        )
        yield {"intake": intake, "outreach": outreach}


@pytest.fixture
async def people_db(postgres_url: str) -> AsyncIterator[Any]:
    """The database the served outreach uses, from the test's own event loop, for adding people."""
    engine = make_engine(postgres_url)
    yield SimpleNamespace(sessions=make_sessionmaker(engine))
    await engine.dispose()
    await wipe(postgres_url)  # people set up here would change how later tests' cases are routed


@pytest.fixture
async def broker(amqp_url: str) -> AsyncIterator[Broker]:
    broker = Broker(amqp_url)
    await broker.connect()
    yield broker
    await broker.close()


async def seed(broker: Broker, outreach: str) -> dict[str, str]:
    """Three cases the way diagnosis sends them; one saved by a withdrawal and one lost by hand, for the results."""
    run = uuid.uuid4().hex[:6]
    seeds = {
        "main": rich_diagnosis(
            customer=f"Acme GmbH {run}", root_cause="rocky_onboarding", owner="olga", priority=80, mrr_minor=120_000
        ),
        "saved": rich_diagnosis(
            customer=f"Beta BV {run}", root_cause="known_issue", owner="pete", priority=50, mrr_minor=30_000
        ),
        "lost": rich_diagnosis(
            customer=f"Gamma AB {run}", root_cause="rocky_onboarding", owner="pete", priority=40, mrr_minor=15_000
        ),
        "other": rich_diagnosis(
            customer=f"Delta Oy {run}",
            root_cause="champion_left",
            owner="pete",
            priority=65,
            mrr_minor=80_000,
            days_left=9,
        ),
        "small": rich_diagnosis(
            customer=f"Epsilon SRL {run}",
            root_cause="payment_failure",
            owner="rui",
            priority=25,
            mrr_minor=4_900,
            days_left=3,
        ),
    }
    for payload in seeds.values():
        await broker.publish(Envelope.wrap(payload, correlation_id=f"desk-{run}", source="test"))
    async with httpx.AsyncClient(base_url=outreach) as api:
        ids = {name: await case_id_of(api, payload.account_id) for name, payload in seeds.items()}
        # A save is Brink's only when someone reached the customer before they stayed.
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        tasks = (await api.get("/v1/tasks", headers=bearer, params={"case_id": ids["saved"]})).json()["items"]
        reached = await api.post(f"/v1/tasks/{tasks[0]['id']}/complete", headers=bearer, json={"result": "reached"})
        assert reached.status_code == 200
        saved = seeds["saved"]
        # A save needs someone to have reached the customer before they stayed.
        auth = {"Authorization": f"Bearer {TOKEN}"}
        tasks = await api.get("/v1/tasks", params={"case_id": ids["saved"], "status": "open"}, headers=auth)
        first = min(tasks.json()["items"], key=lambda task: task["position"])
        reached = await api.post(f"/v1/tasks/{first['id']}/complete", headers=auth, json={"result": "reached"})
        assert reached.status_code == 200, reached.text
        await broker.publish(
            Envelope.wrap(
                CancellationWithdrawn(
                    cancellation_id=saved.cancellation_id,
                    account_id=saved.account_id,
                    source="stripe",
                    source_event_id=f"evt_{run}",
                    source_event_type="customer.subscription.updated",
                    customer_id=saved.customer_id,
                ),
                correlation_id=f"desk-{run}",
                source="test",
            )
        )
        lost = await api.post(
            f"/v1/cases/{ids['lost']}/outcome",
            headers={"Authorization": f"Bearer {TOKEN}"},
            json={"outcome": "lost", "reason": "went with a competitor", "confirmed_root_cause": "wrong_fit"},
        )
        assert lost.status_code == 200
    return {name: ids[name] for name in ids} | {"customer": seeds["main"].customer_name}


async def shot(page: Any, artifacts: Path, name: str) -> None:
    await page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


async def test_sign_in_work_a_case_and_see_every_page(
    browser: Any,
    brink_urls: dict[str, str],
    broker: Broker,
    artifacts: Path,
    clock: MovableClock,
    people_db: Any,
) -> None:
    outreach = brink_urls["outreach"]
    seeded = await seed(broker, outreach)
    await add_person(people_db, "dana@example.com", name="Dana", role="admin")
    # The first calls were due 2 to 4 hours after their cases opened: now they are overdue; nothing is 8 hours overdue,
    # when the inaction ladder would tell the owners' managers.
    clock.offset = timedelta(hours=5)
    # A poison message: diagnosis.completed without its fields is retried, then dead-lettered.
    await broker.publish(
        Envelope(type="diagnosis.completed", data={"nonsense": True}, correlation_id="poison", source="test")
    )
    context = await browser.new_context(viewport=LAPTOP, base_url=outreach)
    page = await context.new_page()

    # Signed out, the desk sends you to sign in, with the cursor in the email field; an API token is no password.
    await page.goto("/desk")
    assert "/desk/signin" in page.url
    assert await page.evaluate("document.activeElement.id") == "email"
    await page.get_by_label("Email").fill("dana@example.com")
    await page.get_by_label("Password").fill(TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    assert "do not match an active person" in await page.get_by_role("alert").inner_text()
    await page.get_by_label("Password").fill(PASSWORD)
    await shot(page, artifacts, "signin")
    await page.get_by_label("Password").press("Enter")

    # My work first (Dana owns no task yet), then the cases: highest priority first, the cookie held even over
    # plain http on 127.0.0.1.
    await page.wait_for_url(f"{outreach}/desk")
    assert await page.get_by_role("heading", name="My work").is_visible()
    await page.get_by_role("link", name="Cases").click()
    await page.wait_for_url(f"{outreach}/desk/cases")
    cookies = {cookie["name"]: cookie for cookie in await context.cookies()}
    assert cookies["brink_desk"]["httpOnly"] and cookies["brink_desk"]["secure"]
    assert cookies["brink_desk"]["sameSite"] == "Lax"
    assert await page.get_by_text("Signed in as Dana").is_visible()
    names = await page.locator("table.queue tbody th").all_inner_texts()
    order = [next(i for i, text in enumerate(names) if key in text) for key in ("Acme", "Delta", "Epsilon")]
    assert order == sorted(order)  # priority 80, 65, 25
    overdue = page.locator("table.queue tbody tr", has_text="Acme").locator(".flag-overdue")
    assert (await overdue.inner_text()).strip().startswith("⚠ Overdue by")
    await shot(page, artifacts, "queue")
    await page.keyboard.press("Tab")  # keyboard users first meet the skip link
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.keyboard.press("Enter")
    assert await page.evaluate("document.activeElement.id") == "main"
    await page.get_by_label("Owner").select_option("olga")
    await page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.queue tbody tr")
    assert await rows.count() == 1

    # The case: stated reason beside the hypotheses, unknowns, verdict; complete the first task.
    await page.get_by_role("link", name=seeded["customer"]).click()
    await page.wait_for_url(f"**/desk/cases/{seeded['main']}")
    assert await page.get_by_role("heading", name="What they said").is_visible()
    assert await page.locator("meter").count() == 2
    assert await page.get_by_text("Is the person who bought Brink still with the company?").is_visible()
    first = page.locator("ol.timeline > li").first
    assert "Overdue" in await first.locator(".badge").inner_text()
    await shot(page, artifacts, "case")
    await first.get_by_label("reached").check()
    await first.get_by_label("Note").fill("Training booked for Thursday")
    await first.get_by_role("button", name="Complete task").click()
    await page.wait_for_url("**done=*")
    first = page.locator("ol.timeline > li").first
    assert "Done" in await first.locator(".badge").inner_text()
    assert "Training booked for Thursday" in await first.inner_text()
    assert "by Dana" in await first.inner_text()
    assert await page.get_by_role("status").filter(has_text="Task recorded").is_visible()
    history = await page.locator("ul.history").inner_text()
    assert "task completed by Dana" in history
    await shot(page, artifacts, "case-after")

    # Results: one saved and one lost so far, drawn as charts.
    await page.get_by_role("link", name="Results").click()
    await page.wait_for_url("**/desk/results")
    assert await page.locator("figure.chart svg").count() == 4
    assert "50%" in await page.locator(".facts").inner_text()
    await shot(page, artifacts, "results")

    # Flow: every queue with its retry and dead queues, the outboxes, refreshed in place.
    await page.get_by_role("link", name="Flow").click()
    await page.wait_for_url("**/desk/flow")
    table = await page.locator("table.flow").inner_text()
    for name in ("outreach.diagnoses", "outreach.withdrawals", "diagnosis.cancellations"):
        assert name in table
    # Diagnosis is not running here: its queue is flagged (never declared, or declared by an earlier test and idle).
    idle = await page.locator("tr", has_text="diagnosis.cancellations").inner_text()
    assert "not declared yet" in idle or "no consumer" in idle
    await expect(page.locator("tr", has_text="outreach.diagnoses")).to_contain_text("1 dead letter", timeout=15_000)
    facts = await page.locator("#flow-panel .facts").inner_text()
    assert "outreach outbox" in facts and "intake outbox" in facts
    assert "unreachable" not in facts and "reports no outbox" not in facts  # intake's backlog read from its /metrics
    before = await page.locator("#flow-at time").get_attribute("datetime")
    await expect(page.locator("#flow-at time")).not_to_have_attribute("datetime", before, timeout=10_000)
    await shot(page, artifacts, "flow")

    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/desk/signin")
    await page.goto("/desk")
    assert "/desk/signin" in page.url
    await context.close()
