"""People on the desk over HTTP: server-side sessions (sign-out, deactivation, a new id per sign-in, expiry),
sign-in attempts limited per account and per address, and the admin's People page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from services.outreach import people
from services.outreach.app import build_app
from services.outreach.desk.settings import DeskSettings
from services.outreach.settings import OutreachSettings
from tests.conftest import settings_for
from tests.desk_helpers import CSRF, PASSWORD, add_person, sign_in, wipe
from tests.outreach_helpers import FakeClock

PER_ADDRESS = 8


class Outreach:
    def __init__(self, app, clock: FakeClock) -> None:
        self.app, self.clock = app, clock
        self.runtime = app.state.runtime

    def browser(self, address: str = "10.0.0.1") -> httpx.AsyncClient:
        """A browser-like client (https, so the Secure cookie is kept) from an address of its own."""
        transport = httpx.ASGITransport(app=self.app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="https://outreach")


@pytest.fixture
async def outreach(database_url: str, amqp_url: str) -> AsyncIterator[Outreach]:
    await wipe(database_url)
    clock = FakeClock()
    app = build_app(
        settings_for(OutreachSettings, database_url=database_url, amqp_url=amqp_url),
        clock=clock,
        desk_settings=DeskSettings(_env_file=None, signin_attempts_per_address=PER_ADDRESS),
    )
    async with app.router.lifespan_context(app):
        desk = Outreach(app, clock)
        await add_person(desk.runtime, "ada@example.com", role="admin", name="Ada")
        await add_person(desk.runtime, "olga@example.com", role="csm", name="Olga")
        yield desk
    await wipe(database_url)  # people set up here would change how later tests' cases are routed


async def test_signing_out_ends_the_session_on_the_server(outreach: Outreach) -> None:
    async with outreach.browser() as olga:
        csrf = await sign_in(olga, "olga@example.com")
        cookie = olga.cookies["brink_desk"]
        assert (await olga.post("/desk/signout", data={"csrf": csrf})).status_code == 303
    async with outreach.browser() as replay:  # the same cookie, kept by someone after sign-out
        replay.cookies.set("brink_desk", cookie, domain="outreach", path="/desk")
        assert (await replay.get("/desk")).status_code == 303


async def test_every_sign_in_gets_a_new_session_id_and_ends_the_one_it_replaces(outreach: Outreach) -> None:
    async with outreach.browser() as olga:
        await sign_in(olga, "olga@example.com")
        first = olga.cookies["brink_desk"]
        await sign_in(olga, "olga@example.com")
        second = olga.cookies["brink_desk"]
        assert first != second and (await olga.get("/desk")).status_code == 200
    async with outreach.browser() as replay:
        replay.cookies.set("brink_desk", first, domain="outreach", path="/desk")
        assert (await replay.get("/desk")).status_code == 303


async def test_a_session_expires_after_the_configured_hours(outreach: Outreach) -> None:
    async with outreach.browser() as olga:
        await sign_in(olga, "olga@example.com")
        outreach.clock.advance(hours=11, minutes=59)
        assert (await olga.get("/desk")).status_code == 200
        outreach.clock.advance(minutes=2)
        response = await olga.get("/desk")
        assert response.status_code == 303 and response.headers["location"].startswith("/desk/signin")


async def test_an_admin_deactivating_a_person_ends_their_open_session_at_once(outreach: Outreach) -> None:
    async with outreach.browser("10.0.0.1") as olga, outreach.browser("10.0.0.2") as ada:
        await sign_in(olga, "olga@example.com")
        admin_csrf = await sign_in(ada, "ada@example.com")
        people_page = (await ada.get("/desk/people")).text
        olga_id = re.search(r'id="person-([^"]+)"[^>]*>\s*<th scope="row">Olga', people_page).group(1)

        refused = await ada.post(f"/desk/people/{olga_id}", data={"do": "deactivate"})
        assert refused.status_code == 403 and (await olga.get("/desk")).status_code == 200
        done = await ada.post(f"/desk/people/{olga_id}", data={"do": "deactivate", "csrf": admin_csrf})
        assert done.status_code == 303

        assert (await olga.get("/desk")).status_code == 303
        again = await olga.post("/desk/signin", data={"email": "olga@example.com", "password": PASSWORD})
        assert again.status_code == 401 and "do not match an active person" in again.text
        assert "inactive" in (await ada.get("/desk/people")).text


async def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(outreach: Outreach) -> None:
    async with outreach.browser() as browser:
        wrong = await browser.post("/desk/signin", data={"email": "olga@example.com", "password": "not her password"})
        unknown = await browser.post(
            "/desk/signin", data={"email": "nobody@example.com", "password": "anything at all"}
        )
    assert wrong.status_code == unknown.status_code == 401
    message = re.compile(r'<p class="alert"[^>]*>(.*?)</p>', re.S)
    assert message.search(wrong.text).group(1) == message.search(unknown.text).group(1)


async def test_the_sixth_wrong_password_in_a_minute_is_refused_even_when_right(outreach: Outreach) -> None:
    async with outreach.browser("10.0.0.3") as guesser, outreach.browser("10.0.0.4") as olga:
        for attempt in range(5):
            answer = await guesser.post(
                "/desk/signin", data={"email": "olga@example.com", "password": f"guess {attempt}"}
            )
            assert answer.status_code == 401
        sixth = await guesser.post("/desk/signin", data={"email": "olga@example.com", "password": PASSWORD})
        assert sixth.status_code == 429 and "Too many failed sign-ins" in sixth.text
        assert 1 <= int(sixth.headers["retry-after"]) <= 60
        # The account is held from any address, for the rest of the minute; then it opens again.
        from_elsewhere = await olga.post("/desk/signin", data={"email": "olga@example.com", "password": PASSWORD})
        assert from_elsewhere.status_code == 429
        outreach.clock.advance(seconds=61)
        assert (
            await olga.post("/desk/signin", data={"email": "olga@example.com", "password": PASSWORD})
        ).status_code == 303


async def test_one_address_guessing_many_accounts_is_refused_after_its_limit(outreach: Outreach) -> None:
    async with outreach.browser("10.0.0.5") as sprayer, outreach.browser("10.0.0.6") as ada:
        for attempt in range(PER_ADDRESS):
            answer = await sprayer.post(
                "/desk/signin", data={"email": f"person{attempt}@example.com", "password": "Summer2026!!"}
            )
            assert answer.status_code == 401
        refused = await sprayer.post("/desk/signin", data={"email": "ada@example.com", "password": PASSWORD})
        assert refused.status_code == 429
        assert (
            await ada.post("/desk/signin", data={"email": "ada@example.com", "password": PASSWORD})
        ).status_code == 303


async def test_only_an_admin_manages_people_and_bad_fields_are_named(outreach: Outreach) -> None:
    async with outreach.browser("10.0.0.7") as olga, outreach.browser("10.0.0.8") as ada:
        olga_csrf = await sign_in(olga, "olga@example.com")
        refused = await olga.get("/desk/people")
        assert refused.status_code == 403 and "Signed in as Olga" in refused.text
        assert re.search(r'<nav aria-label="Desk">.*href="/desk/cases".*</nav>', refused.text, re.S)
        assert '<a href="/desk">Back to my work</a>' in refused.text
        tried = await olga.post(
            "/desk/people",
            data={"csrf": olga_csrf, "email": "eve@example.com", "name": "Eve", "role": "admin", "password": PASSWORD},
        )
        assert tried.status_code == 403 and "Only an admin manages people" in tried.text
        assert "People" not in re.search(r"<nav.*?</nav>", (await olga.get("/desk")).text, re.S).group(0)

        csrf = await sign_in(ada, "ada@example.com")
        form = {"csrf": csrf, "name": "Mia", "role": "cs_manager", "time_zone": "Europe/Paris", "password": PASSWORD}
        bad_email = await ada.post("/desk/people", data=form | {"email": "mia at example"})
        assert bad_email.status_code == 422 and "is not an email address" in bad_email.text
        bad_zone = await ada.post("/desk/people", data=form | {"email": "mia@example.com", "time_zone": "Mars/Base"})
        assert bad_zone.status_code == 422 and "is not a time zone name" in bad_zone.text
        weak = await ada.post("/desk/people", data=form | {"email": "mia@example.com", "password": "short"})
        assert weak.status_code == 422 and "at least 12 characters" in weak.text
        added = await ada.post("/desk/people", data=form | {"email": "mia@example.com", "manager": "ada@example.com"})
        assert added.status_code == 303
        taken = await ada.post("/desk/people", data=form | {"email": "MIA@example.com"})
        assert taken.status_code == 422 and "already a person" in taken.text
        page = (await ada.get("/desk/people")).text
        assert "mia@example.com" in page and 'value="Europe/Paris"' in page

    async with outreach.browser("10.0.0.9") as mia:
        await sign_in(mia, "mia@example.com")
        assert "Signed in as Mia" in (await mia.get("/desk")).text
        assert CSRF.search((await mia.get("/desk")).text)


async def _person(outreach: Outreach, email: str):
    async with outreach.runtime.sessions() as session:
        return await people.find_by_email(session, email)


async def test_a_person_chooses_how_they_are_told_and_an_admin_for_anyone(outreach: Outreach) -> None:
    async with outreach.browser("10.0.0.10") as olga, outreach.browser("10.0.0.11") as ada:
        csrf = await sign_in(olga, "olga@example.com")
        mine = await olga.get("/desk/settings")
        assert mine.status_code == 200 and 'href="/desk/settings" aria-current="page">My settings' in mine.text
        assert re.search(r'value="slack_dm"\s+disabled', mine.text), "no Slack user id: no Slack direct message"

        saved = await olga.post("/desk/settings", data={"csrf": csrf, "channels": "email"})
        assert saved.status_code == 303
        olga_now = await _person(outreach, "olga@example.com")
        assert (olga_now.notify_channels, olga_now.daily_digest) == ("email", False)
        page = (await olga.get(saved.headers["location"])).text
        assert "Saved." in page and re.search(r'value="email"\s+checked', page)

        unknown = await olga.post("/desk/settings", data={"csrf": csrf, "channels": ["email", "sms"]})
        assert unknown.status_code == 422 and "Choose among email and slack direct message" in unknown.text
        no_slack = await olga.post("/desk/settings", data={"csrf": csrf, "channels": "slack_dm"})
        assert no_slack.status_code == 422 and "need a Slack user id" in no_slack.text
        forged = await olga.post("/desk/settings", data={"channels": "slack_dm"})
        assert forged.status_code == 403
        assert (await _person(outreach, "olga@example.com")).notify_channels == "email", "refusals changed nothing"

        ada_id = (await _person(outreach, "ada@example.com")).id
        assert (await olga.get(f"/desk/people/{ada_id}/notifications")).status_code == 403
        tried = await olga.post(f"/desk/people/{ada_id}/notifications", data={"csrf": csrf, "daily_digest": "yes"})
        assert tried.status_code == 403

        admin_csrf = await sign_in(ada, "ada@example.com")
        olga_id = olga_now.id
        assert f'href="/desk/people/{olga_id}/notifications"' in (await ada.get("/desk/people")).text
        theirs = await ada.get(f"/desk/people/{olga_id}/notifications")
        assert theirs.status_code == 200 and "How Olga is told" in theirs.text
        by_admin = await ada.post(
            f"/desk/people/{olga_id}/notifications", data={"csrf": admin_csrf, "daily_digest": "yes"}
        )
        assert by_admin.status_code == 303
        olga_now = await _person(outreach, "olga@example.com")
        assert (olga_now.notify_channels, olga_now.daily_digest) == ("", True), "only on the desk, with the digest"
        assert (await ada.get("/desk/people/no-such-person/notifications")).status_code == 404
