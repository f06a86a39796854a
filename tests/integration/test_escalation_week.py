"""Two outreach instances on one PostgreSQL over a simulated week: the customer ladder, our inaction ladder,
digests and personal notifications, with a real SMTP server and a local Slack. Every rung fires once and every
notification is delivered once, counted where it arrives."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update

from services.outreach.app import build_notifiers, build_policy
from services.outreach.escalation import Fired
from services.outreach.models import Case, CaseEvent, Notification, Person, Timer
from services.outreach.people import add_person
from services.outreach.scheduler import Scheduler
from shared.db import make_engine, make_sessionmaker, transaction
from tests.conftest import FIXTURES
from tests.notify_servers import BOT_TOKEN, FakeSlack, SmtpServer, fake_slack, smtp_server
from tests.outreach_helpers import Desk, FakeClock, diagnosis, open_desk, outreach_settings, wipe_outreach

pytestmark = pytest.mark.postgres

BIG, SMALL = 250_000, 20_000
STEP = timedelta(minutes=30)
PEOPLE = [
    # email, role, manager, time zone, Slack user
    ("ed@example.com", "executive_sponsor", None, "America/New_York", "U0ED"),
    ("vera@example.com", "vp_customer_success", "ed@example.com", "America/New_York", "U0VERA"),
    ("mia@example.com", "cs_manager", "vera@example.com", "Europe/London", "U0MIA"),
    ("ana@example.com", "csm", "mia@example.com", "Europe/Paris", "U0ANA"),
    ("ben@example.com", "csm", "mia@example.com", "Europe/London", "U0BEN"),
]


@dataclass
class Instance:
    scheduler: Scheduler
    fired: list[Fired]

    async def poll(self) -> None:
        """One pass of what the instance's background loops do."""
        self.fired += await self.scheduler.fire_timers()
        await self.scheduler.send_digests()
        await self.scheduler.deliver_notifications()


@pytest.fixture
def ladder_dir(tmp_path: Path) -> Path:
    """The week's ladder as the default one: operators may put any ladder file in BRINK_LADDER_DIR."""
    directory = tmp_path / "ladders"
    directory.mkdir()
    (directory / "default.yaml").write_text((FIXTURES / "outreach" / "week_ladder.yaml").read_text())
    return directory


@pytest.fixture
async def world(
    postgres_url: str, tmp_path: Path, ladder_dir: Path
) -> AsyncIterator[tuple[Desk, list[Instance], SmtpServer, FakeSlack]]:
    with smtp_server(tmp_path) as smtp, fake_slack(*(slack for *_, slack in PEOPLE)) as slack:
        settings = outreach_settings(
            ladder_dir=ladder_dir,
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_ca_file=smtp.ca_file,
            smtp_sender="brink@example.com",
            slack_bot_token=BOT_TOKEN,
            slack_api_url=f"{slack.base_url}/api",
            slack_webhook_url=f"{slack.base_url}/hooks/T0/B0/X",
            notify_backoff_seconds=0.01,
        )
        clock = FakeClock()
        async with httpx.AsyncClient(timeout=5) as client:
            notifiers = build_notifiers(settings, client)
            desk, engine = await open_desk(postgres_url, channels=tuple(notifiers), clock=clock, ladder_dir=ladder_dir)
            engines = [make_engine(postgres_url), make_engine(postgres_url)]
            instances = [
                Instance(
                    Scheduler(
                        sessions=make_sessionmaker(own),
                        policy=build_policy(settings, tuple(notifiers)),
                        clock=clock,
                        notifiers=notifiers,
                        poll_seconds=1,
                        notify_rounds=5,
                        notify_backoff=timedelta(minutes=1),
                    ),
                    fired=[],
                )
                for own in engines
            ]
            yield desk, instances, smtp, slack
            await wipe_outreach(engine)  # the week's people would take later tests' cases
            for own in [engine, *engines]:
                await own.dispose()


async def set_up_people(desk: Desk) -> None:
    async with transaction(desk.sessions) as session:
        for email, role, manager, zone, slack in PEOPLE:
            await add_person(
                session,
                email=email,
                name=email.split("@")[0].title(),
                role=role,
                now=desk.clock.now(),
                manager_email=manager,
                slack_user_id=slack,
                time_zone=zone,
            )
        # Ben reads email only.
        await session.execute(update(Person).where(Person.email == "ben@example.com").values(notify_channels="email"))


async def work_the_week(desk: Desk, instances: list[Instance], case_ids: list[str]) -> None:
    """Every half hour both instances poll at once; people try what is due, except Ben, who does nothing."""
    for _ in range(int(timedelta(days=7) / STEP)):
        for case_id in case_ids:
            for task in await desk.tasks(case_id, status="open"):
                if task.owner != "ben@example.com" and task.due_at <= desk.clock.now():
                    await desk.complete(task.id, "no_answer")  # the customer never answers
        await asyncio.gather(*(instance.poll() for instance in instances))
        desk.clock.advance(minutes=STEP.total_seconds() / 60)


async def test_a_week_of_silence_and_inaction_with_two_instances(world) -> None:
    desk, instances, smtp, slack = world
    await set_up_people(desk)
    case_ids = [
        await desk.receive(diagnosis(root_cause="poor_implementation", mrr_minor=BIG, account_owner="ana@example.com")),
        await desk.receive(diagnosis(root_cause="champion_left", mrr_minor=SMALL, account_owner="ana@example.com")),
        await desk.receive(diagnosis(root_cause="known_issue", mrr_minor=BIG, account_owner="ben@example.com")),
    ]
    await work_the_week(desk, instances, case_ids)

    # Every timer fired once, by one of the two instances, and both took part.
    fired = [item for instance in instances for item in instance.fired]
    assert len(fired) == len({item.timer_id for item in fired})
    assert all(instance.fired for instance in instances)
    async with desk.sessions() as session:
        fired_rows = (await session.execute(select(Timer.id).where(Timer.fired_at.is_not(None)))).scalars().all()
        events = list((await session.execute(select(CaseEvent).order_by(CaseEvent.id))).scalars())
        notifications = list((await session.execute(select(Notification))).scalars())
        cases = {case.id: case for case in (await session.execute(select(Case))).scalars()}
    assert sorted(fired_rows) == sorted(item.timer_id for item in fired)

    # The customer ladder: one rung per firing, in order, each rung once (a rung that repeats: its repeats).
    ladder = [
        "csm_follow_up",
        "csm_follow_up",
        "cs_manager",
        "vp_customer_success",
        "executive_outreach",
        "onsite_visit",
    ]
    climbed = {case_id: [e.detail["rung"] for e in events if e.case_id == case_id and e.kind == "escalated"]
               for case_id in case_ids}  # fmt: skip
    big, small, neglected = case_ids
    assert climbed[big] == ladder, "the whole ladder, each rung once"
    assert climbed[small] == ladder[:4], "the executive and the visit are for high-value accounts"
    assert {
        (e.detail["rung"], e.detail["reason"]) for e in events if e.case_id == small and e.kind == "rung_skipped"
    } == {
        ("executive_outreach", "below_revenue_threshold"),
        ("onsite_visit", "below_revenue_threshold"),
    }
    assert climbed[neglected] == ladder[: len(climbed[neglected])]
    escalated_at = [e.at for e in events if e.kind in ("escalated", "nudged")]
    assert all(moment.weekday() < 5 for moment in escalated_at), "nobody was paged at the weekend"
    rung_owners = {e.detail["rung"]: e.detail["owner"] for e in events if e.case_id == big and e.kind == "escalated"}
    assert rung_owners == {  # up the owner's chain of managers, by role
        "csm_follow_up": "ana@example.com",
        "cs_manager": "mia@example.com",
        "vp_customer_success": "vera@example.com",
        "executive_outreach": "ed@example.com",
        "onsite_visit": "vera@example.com",
    }

    # Our inaction: Ben's tasks reminded Ben, then told Mia, then went to Mia; the customer ladder did not move
    # for them until Mia tried and nobody answered.
    nudged = Counter((e.detail["task_id"], e.detail["step"]) for e in events if e.kind == "nudged")
    assert set(nudged.values()) == {1}, "each inaction rung once per task"
    neglected_nudges = [e.detail["rung"] for e in events if e.case_id == neglected and e.kind == "nudged"]
    assert {"remind_owner", "tell_manager", "reassign_to_manager"} <= set(neglected_nudges)
    assert any(e.kind == "task_reassigned" and e.detail["after"] == "mia@example.com" for e in events)
    assert cases[neglected].owner == "ben@example.com"

    # Every notification delivered once, counted where it arrived.
    assert notifications and {n.status for n in notifications} == {"sent"}
    emails = Counter(smtp.mailbox.ids())
    assert set(emails.values()) == {1}
    assert set(emails) == {n.id for n in notifications if n.channel == "email"}
    slack_ids = Counter(m["metadata"]["event_payload"]["id"] for m in slack.messages)
    assert set(slack_ids.values()) == {1}
    assert set(slack_ids) == {n.id for n in notifications if n.channel == "slack_dm"}
    assert len(slack.hook_texts) == sum(1 for n in notifications if n.channel == "slack")

    # What each person received.
    received = Counter((n.recipient, n.kind) for n in notifications if n.channel == "email")
    assert received[("ana@example.com", "task.assigned")] == 2  # one per case, listing its tasks
    assert received[("mia@example.com", "case.escalated_to_you")] >= 2
    assert received[("vera@example.com", "case.escalated_to_you")] >= 2
    assert received[("ed@example.com", "case.escalated_to_you")] == 1
    assert received[("ben@example.com", "task.overdue")] >= 1
    assert received[("mia@example.com", "task.overdue_in_team")] >= 1
    assert 1 <= received[("ana@example.com", "digest.daily")] <= 5, "at most one digest per working day"
    assert not [n for n in notifications if n.recipient == "ben@example.com" and n.channel == "slack_dm"]
    subjects = [str(email["Subject"]) for email in smtp.mailbox.emails() if email["To"] == "mia@example.com"]
    assert "Escalated to you: Acme GmbH" in subjects
