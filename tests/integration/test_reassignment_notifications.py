"""'Assigned to you' when work is given to someone, on the desk or on /v1/, with two outreach instances delivering:
each reassignment reaches the new owner once, by a real SMTP server and the local Slack; nobody is told what they
gave themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from services.outreach import messages, people
from services.outreach.app import build_app
from services.outreach.models import Notification, Task
from services.outreach.settings import OutreachSettings
from shared.db import transaction
from tests.conftest import Brink, eventually, settings_for, start_brink
from tests.desk_helpers import PASSWORD, case_id_of, sign_in, wipe
from tests.notify_servers import BOT_TOKEN, FakeSlack, SmtpServer, fake_slack, smtp_server

ASSIGNED_EMAIL, ASSIGNED_SLACK = "Assigned to you", "*Assigned to you"


@dataclass
class Team:
    brink: Brink
    second: httpx.AsyncClient  # the /v1/ API of a second outreach instance on the same database and broker
    smtp: SmtpServer
    slack: FakeSlack

    def browser(self, address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.brink.apps["outreach"], client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="https://outreach")

    async def tasks(self, case_id: str) -> list[Task]:
        async with self.brink.apps["outreach"].state.runtime.sessions() as session:
            rows = await session.execute(select(Task).where(Task.case_id == case_id).order_by(Task.position))
            return list(rows.scalars())

    async def assignments(self) -> list[Notification]:
        async with self.brink.apps["outreach"].state.runtime.sessions() as session:
            rows = await session.execute(select(Notification).where(Notification.kind == messages.ASSIGNED))
            return list(rows.scalars())

    def emails_to(self, email: str) -> list[str]:
        return [str(mail["Subject"]) for mail in self.smtp.mailbox.emails() if mail["To"] == email]


@pytest.fixture
async def team(database_url: str, amqp_url: str, tmp_path: Path) -> AsyncIterator[Team]:
    await wipe(database_url)
    with smtp_server(tmp_path) as smtp, fake_slack("U0OLGA", "U0PETE", "U0MIA") as slack:
        notify = {
            "scheduler_poll_seconds": 0.2,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_ca_file": smtp.ca_file,
            "smtp_sender": "brink@example.com",
            "slack_bot_token": BOT_TOKEN,
            "slack_api_url": f"{slack.base_url}/api",
            "notify_backoff_seconds": 0.01,
        }
        async with AsyncExitStack() as stack:
            brink = await start_brink(stack, database_url=database_url, amqp_url=amqp_url, **notify)
            second = build_app(settings_for(OutreachSettings, database_url=database_url, amqp_url=amqp_url, **notify))
            await stack.enter_async_context(second.router.lifespan_context(second))
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url="http://outreach-2")
            )
            async with transaction(brink.apps["outreach"].state.runtime.sessions) as session:
                for email, role, manager, slack_user in (
                    ("mia@example.com", "cs_manager", None, "U0MIA"),
                    ("olga@example.com", "csm", "mia@example.com", "U0OLGA"),
                    ("pete@example.com", "csm", "mia@example.com", "U0PETE"),
                ):
                    await people.add_person(
                        session,
                        email=email,
                        name=email.split("@")[0].title(),
                        role=role,
                        manager_email=manager,
                        slack_user_id=slack_user,
                        password=PASSWORD,
                        now=datetime.now(UTC),
                    )
            yield Team(brink=brink, second=client, smtp=smtp, slack=slack)
    await wipe(database_url)  # people set up here would change how later tests' cases are routed


async def test_work_given_to_someone_reaches_them_once_and_nobody_is_told_what_they_took(team: Team) -> None:
    brink = team.brink
    opened = await brink.intake.post(
        "/v1/cancellations",
        headers=brink.auth,
        json={
            "customer_id": "acme-r1",
            "account_owner": "olga@example.com",
            "feedback": "unused",
            "comment": "Nobody used it",
        },
    )
    assert opened.status_code == 202
    case_id = await case_id_of(brink.outreach, "api:acme-r1")
    first, second = [task for task in await team.tasks(case_id) if task.status == "open"][:2]

    # Olga gives a task to Pete on the desk (the first instance).
    async with team.browser("10.2.0.1") as olga:
        csrf = await sign_in(olga, "olga@example.com")
        given = await olga.post(
            f"/desk/cases/{case_id}/tasks/{first.id}/reassign", data={"csrf": csrf, "to": "pete@example.com"}
        )
        assert given.status_code == 303
    # Mia gives Pete the whole case through /v1/ on the second instance: Olga's other open task goes with it.
    handed = await team.second.post(
        f"/v1/cases/{case_id}/reassign", headers=brink.auth, json={"to": "pete@example.com", "by": "mia@example.com"}
    )
    assert handed.status_code == 200
    # Mia takes a task herself, on the desk and through /v1/: she is not told.
    async with team.browser("10.2.0.2") as mia:
        csrf = await sign_in(mia, "mia@example.com")
        taken = await mia.post(
            f"/desk/cases/{case_id}/tasks/{second.id}/reassign", data={"csrf": csrf, "to": "mia@example.com"}
        )
        assert taken.status_code == 303
    taken = await team.second.post(
        f"/v1/tasks/{first.id}/reassign", headers=brink.auth, json={"to": "mia@example.com", "by": "mia@example.com"}
    )
    assert taken.status_code == 200

    async def all_sent() -> bool:
        to_them = [n for n in await team.assignments() if n.recipient != "olga@example.com"]
        return len(to_them) == 4 and all(n.status == "sent" for n in to_them)

    await eventually(all_sent, timeout=20)
    pete_emails = [subject for subject in team.emails_to("pete@example.com") if subject.startswith(ASSIGNED_EMAIL)]
    assert pete_emails == ["Assigned to you: api:acme-r1"] * 2
    [task_given] = [text for text in team.slack.texts_to("U0PETE") if "Given to you by olga@example.com" in text]
    [case_given] = [text for text in team.slack.texts_to("U0PETE") if "Given to you by mia@example.com" in text]
    assert task_given.startswith(ASSIGNED_SLACK) and first.title in task_given
    assert case_given.startswith(ASSIGNED_SLACK) and second.title in case_given
    assert not [s for s in team.emails_to("mia@example.com") if s.startswith(ASSIGNED_EMAIL)]
    assert not [t for t in team.slack.texts_to("U0MIA") if t.startswith(ASSIGNED_SLACK)]
    ids = team.smtp.mailbox.ids()
    assert len(ids) == len(set(ids)), "no email was delivered twice by the two instances"
