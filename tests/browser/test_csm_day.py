"""A CSM's day on the desk in Debian's Chromium, with intake, diagnosis and outreach served over real HTTP on
PostgreSQL and RabbitMQ: sign in; only her own tasks; complete one with a note; answer two discovery questions
and see the diagnosis change; snooze one; reassign one to a colleague, who then sees it; her manager sees the
team's overdue tasks; an admin deactivates her and her open session ends at once; the sixth wrong password in
a minute is refused. Screenshots in test-artifacts/desk/csm-*.png."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from services.diagnosis.app import build_app as build_diagnosis
from services.diagnosis.settings import DiagnosisSettings
from services.intake.app import build_app as build_intake
from services.intake.settings import IntakeSettings
from services.outreach.app import build_app as build_outreach
from services.outreach.desk.settings import DeskSettings
from services.outreach.settings import OutreachSettings
from shared.db import make_engine, make_sessionmaker
from tests.browser.conftest import ROUND_THE_CLOCK, serve
from tests.conftest import TOKEN, eventually, purge_consumer_queues, settings_for
from tests.desk_helpers import PASSWORD, add_person, wipe
from tests.outreach_helpers import MovableClock

LAPTOP = {"width": 1366, "height": 768}
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
async def people(postgres_url: str, amqp_url: str) -> AsyncIterator[Any]:
    """An empty outreach with the team set up: Ada (admin), Mia (CS manager), Olga and Pete (her CSMs)."""
    await wipe(postgres_url)
    await purge_consumer_queues(amqp_url)
    engine = make_engine(postgres_url)
    db = SimpleNamespace(sessions=make_sessionmaker(engine))
    await add_person(db, "ada@example.com", role="admin", name="Ada")
    await add_person(db, "mia@example.com", role="cs_manager", name="Mia")
    await add_person(db, "olga@example.com", role="csm", name="Olga", manager="mia@example.com")
    await add_person(db, "pete@example.com", role="csm", name="Pete", manager="mia@example.com")
    yield db
    await engine.dispose()
    await wipe(postgres_url)  # people set up here would change how later tests' cases are routed


@pytest.fixture
def urls(postgres_url: str, amqp_url: str, clock: MovableClock, people: Any) -> Iterator[dict[str, str]]:
    """The three services over real HTTP; the desk sends discovery answers to diagnosis's URL."""
    with ExitStack() as stack:
        base = {"database_url": postgres_url, "amqp_url": amqp_url}
        intake = stack.enter_context(serve(build_intake(settings_for(IntakeSettings, **base))))
        diagnosis = stack.enter_context(serve(build_diagnosis(settings_for(DiagnosisSettings, **base))))
        desk = DeskSettings(_env_file=None, service_urls=[f"intake={intake}", f"diagnosis={diagnosis}"])
        outreach = stack.enter_context(
            serve(
                build_outreach(
                    settings_for(OutreachSettings, scheduler_poll_seconds=0.2, **base, **ROUND_THE_CLOCK),
                    clock=clock,
                    desk_settings=desk,
                )
            )
        )
        yield {"intake": intake, "diagnosis": diagnosis, "outreach": outreach}


async def report(urls: dict[str, str], customer: str, *, owner: str, comment: str) -> str:
    """A cancellation from an internal tool, owned by a CSM; the id of the case outreach opens for it."""
    async with httpx.AsyncClient() as client:
        sent = await client.post(
            f"{urls['intake']}/v1/cancellations",
            headers=BEARER,
            json={"customer_id": customer, "customer_name": customer, "account_owner": owner, "comment": comment},
        )
        assert sent.status_code == 202, sent.text

        async def opened() -> str | None:
            found = await client.get(
                f"{urls['outreach']}/v1/cases", headers=BEARER, params={"account_id": f"api:{customer}"}
            )
            items = found.json()["items"]
            return items[0]["id"] if items else None

        return await eventually(opened, timeout=30)


async def shot(page: Page, artifacts: Path, name: str) -> None:
    await page.screenshot(path=str(artifacts / f"csm-{name}.png"), full_page=True)


async def sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    await page.goto("/desk/signin")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def test_a_csms_day(browser: Any, urls: dict[str, str], clock: MovableClock, artifacts: Path) -> None:
    outreach = urls["outreach"]
    olga_case = await report(
        urls, "Acme GmbH", owner="olga@example.com", comment="Nobody on the team was asked before the purchase"
    )
    pete_case = await report(urls, "Beta BV", owner="pete@example.com", comment="Too expensive for what we use")

    # Olga signs in and lands on her own tasks only.
    olga_context = await browser.new_context(viewport=LAPTOP, base_url=outreach)
    olga = await olga_context.new_page()
    await sign_in(olga, "olga@example.com")
    await olga.wait_for_url(f"{outreach}/desk")
    assert await olga.get_by_role("heading", name="My work").is_visible()
    work = await olga.locator("table.work tbody").inner_text()
    assert "Acme GmbH" in work and "Beta BV" not in work
    await shot(olga, artifacts, "my-work")

    # She completes her first task with a note.
    await olga.locator("table.work tbody tr").first.get_by_role("link").click()
    await olga.wait_for_url(f"**/desk/cases/{olga_case}*")
    first = olga.locator("ol.timeline > li").first
    await first.get_by_label("reached").check()
    await first.get_by_label("Note").fill("Call booked with their ops lead for Thursday")
    await first.get_by_role("button", name="Complete task").click()
    await olga.wait_for_url("**done=completed*")
    assert "Call booked with their ops lead" in await olga.locator("ol.timeline").inner_text()

    # She answers two discovery questions; diagnosis works the case out again and the page shows it.
    facts = olga.locator("dl.facts")
    assert "version 1" in await facts.inner_text()
    answers = olga.locator("form.answers")
    choice = answers.locator("select").first
    await choice.select_option(index=1)
    await answers.locator("input[type=text]").first.fill("The ops lead, who was never asked")
    await shot(olga, artifacts, "answers")
    await answers.get_by_role("button", name="Send answers to diagnosis").click()
    await olga.wait_for_url("**done=answered*")
    for _ in range(60):
        if "version 1" not in await facts.inner_text():
            break
        await olga.wait_for_timeout(500)
        await olga.reload()
    assert re.search(r"version [2-9]", await facts.inner_text())
    assert "diagnosis updated" in await olga.locator("ul.history").inner_text()

    # She snoozes a task with a reason, then gives another to Pete.
    open_steps = olga.locator("ol.timeline > li.step-due, ol.timeline > li.step-overdue")
    snoozed = open_steps.first
    await snoozed.locator("summary", has_text="Snooze or reassign").click()
    await snoozed.get_by_label(re.compile("Snooze until")).fill(
        (datetime.now(UTC) + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    )
    await snoozed.get_by_label("Why").fill("Their ops lead is on holiday")
    await snoozed.get_by_role("button", name="Snooze task").click()
    await olga.wait_for_url("**done=snoozed*")
    assert "Snoozed until" in await olga.locator("ol.timeline").inner_text()
    handed = olga.locator("ol.timeline > li.step-due, ol.timeline > li.step-overdue").last
    title = (await handed.locator(".step-head strong").inner_text()).strip()
    await handed.locator("summary", has_text="Snooze or reassign").click()
    await handed.get_by_label("Give it to").select_option("pete@example.com")
    await handed.get_by_role("button", name="Reassign task").click()
    await olga.wait_for_url("**done=reassigned*")
    history = await olga.locator("ul.history").inner_text()
    assert "task snoozed by Olga" in history and "task reassigned by Olga" in history
    await shot(olga, artifacts, "case")

    # Pete sees the task he was given on his own list.
    pete_context = await browser.new_context(viewport=LAPTOP, base_url=outreach)
    pete = await pete_context.new_page()
    await sign_in(pete, "pete@example.com")
    await pete.wait_for_url(f"{outreach}/desk")
    assert title in await pete.locator("table.work tbody").inner_text()
    await shot(pete, artifacts, "colleague")

    # Pete chooses how he is told: email only, no digest (he has no Slack user id, so that box is off).
    await pete.get_by_role("link", name="My settings").click()
    await expect(pete.get_by_label("Slack direct message")).to_be_disabled()
    await pete.get_by_label("Email").check()
    await pete.get_by_label("A digest of what is due").uncheck()
    await pete.get_by_role("button", name="Save").press("Enter")
    await expect(pete.get_by_role("status")).to_have_text("Saved.")
    await expect(pete.get_by_label("Email")).to_be_checked()
    await expect(pete.get_by_label("A digest of what is due")).not_to_be_checked()
    await shot(pete, artifacts, "settings")

    # Hours later, Mia (their manager) sees the team's overdue tasks, Pete's case among them.
    # Pete's first task was due 4 hours after the case opened; 10 hours on it is overdue, not yet handed to Mia.
    clock.offset = timedelta(hours=10)
    mia_context = await browser.new_context(viewport=LAPTOP, base_url=outreach)
    mia = await mia_context.new_page()
    await sign_in(mia, "mia@example.com")
    await mia.wait_for_url(f"{outreach}/desk")
    await mia.get_by_label("Whose").select_option("team")
    await mia.get_by_label("Show").select_option("overdue")
    await mia.get_by_role("button", name="Show").click()
    team = await mia.locator("table.work tbody").inner_text()
    assert "Overdue by" in team and "Beta BV" in team
    await shot(mia, artifacts, "team-overdue")
    assert pete_case

    # Ada, the admin, deactivates Olga: Olga's open page sends her to sign in at her next click.
    ada_context = await browser.new_context(viewport=LAPTOP, base_url=outreach)
    ada = await ada_context.new_page()
    await sign_in(ada, "ada@example.com")
    await ada.get_by_role("link", name="People").click()
    await ada.get_by_role("button", name="Deactivate Olga").click()
    await ada.wait_for_url("**done=deactivate*")
    await expect(ada.locator("tr", has_text="olga@example.com")).to_contain_text("inactive")
    await shot(ada, artifacts, "people")
    await olga.get_by_role("link", name="My work", exact=True).click()
    await olga.wait_for_url("**/desk/signin*")

    # Someone guessing Pete's password: the sixth wrong one in a minute is refused, even the right one.
    guesser = await (await browser.new_context(viewport=LAPTOP, base_url=outreach)).new_page()
    for attempt in range(5):
        await sign_in(guesser, "pete@example.com", f"guess number {attempt}")
        assert "do not match" in await guesser.get_by_role("alert").inner_text()
    await sign_in(guesser, "pete@example.com")
    refused = await guesser.get_by_role("alert").inner_text()
    assert "Too many failed sign-ins" in refused
    await shot(guesser, artifacts, "throttled")
    for context in (olga_context, pete_context, mia_context, ada_context):
        await context.close()
