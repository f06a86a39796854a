"""Personal notifications by email (a real SMTP server, STARTTLS) and Slack direct message (a local server in the
Slack Web API's shape): each person's channels, escaping, retries, and one delivery per notification id."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from services.outreach import messages
from services.outreach.app import build_notifiers
from services.outreach.clock import SystemClock
from services.outreach.models import Case
from services.outreach.notifications import Recipient, deliver_due, enqueue_personal, wants
from services.outreach.notify.base import Notifier
from services.outreach.policy import Policy
from shared.db import make_engine, make_sessionmaker, transaction
from tests.notify_servers import BOT_TOKEN, FakeSlack, SmtpServer, fake_slack, smtp_server
from tests.outreach_helpers import Desk, FakeClock, diagnosis, open_desk, outreach_settings

ANA = Recipient(email="ana@example.com", name="Ana", time_zone="Europe/Paris", slack_user_id="U0ANA")
BEN = Recipient(email="ben@example.com", name="Ben", time_zone="America/New_York", slack_user_id="U0BEN")
BEN_ON_SLACK = Recipient(email="ben@example.com", name="Ben", slack_user_id="U0BEN", channels=("slack_dm",))


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with fake_slack("U0ANA", "U0BEN") as server:
        yield server


def notifier_settings(smtp: SmtpServer, slack: FakeSlack, **overrides: object) -> dict[str, object]:
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp.port,
        "smtp_tls": "starttls",
        "smtp_ca_file": smtp.ca_file,
        "smtp_sender": "Brink <brink@example.com>",
        "slack_bot_token": BOT_TOKEN,
        "slack_api_url": f"{slack.base_url}/api",
        "slack_webhook_url": f"{slack.base_url}/hooks/T000/B000/XXX",
        "notify_attempts": 2,
        "notify_backoff_seconds": 0.01,
        **overrides,
    }


@pytest.fixture
async def wired(
    database_url: str, smtp: SmtpServer, slack: FakeSlack
) -> AsyncIterator[tuple[Desk, dict[str, Notifier]]]:
    settings = notifier_settings(smtp, slack)
    async with httpx.AsyncClient(timeout=5) as client:
        notifiers = build_notifiers(outreach_settings(**settings), client)
        desk, engine = await open_desk(database_url, channels=tuple(notifiers), **settings)
        yield desk, notifiers
        await engine.dispose()


async def tell(desk: Desk, case_id: str, to: Recipient, kind: str, key: str, **detail: object) -> None:
    async with transaction(desk.sessions) as session:
        case = await session.get_one(Case, case_id)
        await enqueue_personal(
            session, kind=kind, to=to, key=key, channels=desk.policy.channels, clock=desk.clock, case=case, **detail
        )


async def deliver(desk: Desk, notifiers: dict[str, Notifier], rounds: int = 3) -> int:
    return await deliver_due(desk.sessions, notifiers=notifiers, clock=desk.clock, rounds=rounds, backoff=timedelta(0))


async def test_a_person_is_told_by_email_over_starttls_and_by_slack_direct_message(wired, smtp, slack) -> None:
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="champion_left", priority=10))
    task = await desk.open_task(case_id)
    await tell(
        desk, case_id, ANA, messages.ASSIGNED, f"assigned|{task.id}", title=task.title, due_at=task.due_at.isoformat()
    )

    assert await deliver(desk, notifiers) == 2

    [(email, over_tls)] = smtp.mailbox.received
    assert over_tls, "the email went over STARTTLS, its certificate checked against the configured authority"
    assert email["To"] == "ana@example.com" and email["From"] == "Brink <brink@example.com>"
    assert email["Subject"] == "Assigned to you: Acme GmbH"
    assert task.title in email.get_content() and "CET" in email.get_content(), "due time in Ana's own zone"
    [text] = slack.texts_to("U0ANA")
    assert text.startswith("*Assigned to you: Acme GmbH*") and task.title in text
    assert slack.texts_to("U0BEN") == []


async def test_each_person_chooses_their_channels(wired, smtp, slack) -> None:
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    email_only = Recipient(email="ana@example.com", name="Ana", slack_user_id="U0ANA", channels=("email",))
    slack_only = Recipient(email="ben@example.com", name="Ben", slack_user_id="U0BEN", channels=("slack_dm",))
    await tell(desk, case_id, email_only, messages.CLOSED, "closed|1", outcome="lost")
    await tell(desk, case_id, slack_only, messages.CLOSED, "closed|1", outcome="lost")

    assert await deliver(desk, notifiers) == 2
    assert [str(email["To"]) for email in smtp.mailbox.emails()] == ["ana@example.com"]
    assert slack.texts_to("U0ANA") == [] and len(slack.texts_to("U0BEN")) == 1


async def test_slack_text_escapes_what_would_ping_everyone_or_disguise_a_link(wired, slack) -> None:
    desk, notifiers = wired
    hostile = "<!channel> Evil & Co <https://evil.example|bank login>"
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=95, customer_name=hostile))
    await tell(desk, case_id, BEN, messages.OVERDUE, "overdue|x", title="Call <@U0ANA> & co", due_at=None)

    await deliver(desk, notifiers)

    [direct] = slack.texts_to("U0BEN")
    assert "&lt;!channel&gt; Evil &amp; Co &lt;https://evil.example|bank login&gt;" in direct
    assert "Call &lt;@U0ANA&gt; &amp; co" in direct
    assert slack.hook_texts, "the team's channel heard about the new high-priority case"
    for text in [direct, *slack.hook_texts]:
        assert "<!channel>" not in text and "<https://" not in text and "<@" not in text
        assert "&lt;!channel&gt;" in text


async def test_refusals_and_rate_limits_are_retried_with_backoff_then_recorded(wired, slack) -> None:
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    slack.rate_limited = 1
    await tell(desk, case_id, BEN, messages.OVERDUE, "overdue|1", title="Call them", due_at=None)
    stranger = Recipient(email="zed@example.com", name="Zed", slack_user_id="U0ZED", channels=("slack_dm",))
    await tell(desk, case_id, stranger, messages.OVERDUE, "overdue|1", title="Call them", due_at=None)

    await deliver(desk, notifiers, rounds=1)

    assert len(slack.texts_to("U0BEN")) == 1, "a 429 was retried within the round"
    by_recipient = {n.recipient: n for n in await desk.notifications() if n.channel == "slack_dm"}
    assert by_recipient["ben@example.com"].status == "sent"
    failed = by_recipient["zed@example.com"]
    assert failed.status == "failed" and "channel_not_found" in (failed.last_error or "")


async def test_a_rate_limited_slack_is_asked_again_only_after_the_seconds_it_asked_for(wired, slack) -> None:
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    slack.rate_limited, slack.retry_after = 1, "2"
    await tell(desk, case_id, BEN_ON_SLACK, messages.OVERDUE, "overdue|1", title="Call them", due_at=None)

    assert await deliver(desk, notifiers, rounds=1) == 1

    (refused_at, refused), (taken_at, taken) = slack.arrivals
    assert (refused, taken) == (429, 200)
    assert taken_at - refused_at >= 2, "asked again before the Retry-After had passed (backoff here is 10 ms)"
    assert slack.history_reads == 0, "a 429 is an answer: nothing was posted, so there is nothing to look for"
    assert len(slack.texts_to("U0BEN")) == 1


async def test_a_retry_after_longer_than_is_waited_in_place_gives_the_notification_back_until_then(
    wired, slack
) -> None:
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    slack.rate_limited, slack.retry_after = 1, "3600"
    await tell(desk, case_id, BEN_ON_SLACK, messages.OVERDUE, "overdue|1", title="Call them", due_at=None)

    assert await deliver(desk, notifiers) == 0

    assert [status for _, status in slack.arrivals] == [429], "not asked again within the hour"
    [waiting] = [n for n in await desk.notifications() if n.channel == "slack_dm"]
    assert waiting.status == "pending" and "retry after 3600 s" in (waiting.last_error or "")
    assert waiting.next_attempt_at >= desk.clock.now() + timedelta(hours=1)
    assert await deliver(desk, notifiers) == 0, "not due again yet"
    desk.clock.advance(hours=1)
    assert await deliver(desk, notifiers) == 1 and len(slack.texts_to("U0BEN")) == 1


async def test_a_direct_message_whose_answer_was_lost_is_found_in_slack_and_not_posted_again(wired, slack) -> None:
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    slack.drop_after_posting = 1  # Slack posts it, then the connection drops before the answer
    await tell(desk, case_id, BEN_ON_SLACK, messages.OVERDUE, "overdue|1", title="Call them", due_at=None)

    assert await deliver(desk, notifiers) == 1

    assert len(slack.texts_to("U0BEN")) == 1, "the retry found it posted"
    assert slack.history_reads == 1
    [notification] = await desk.notifications()
    assert notification.status == "sent"


async def test_a_bot_that_may_not_read_direct_messages_posts_again_rather_than_never(wired, slack) -> None:
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    slack.scopes.discard("im:history")
    slack.drop_after_posting = 1
    await tell(desk, case_id, BEN_ON_SLACK, messages.OVERDUE, "overdue|1", title="Call them", due_at=None)

    assert await deliver(desk, notifiers) == 1

    assert len(slack.texts_to("U0BEN")) == 2, "it could not know, so it posted again (and told the log why)"
    [notification] = await desk.notifications()
    assert notification.status == "sent"


@pytest.mark.parametrize("crash", ["after_posting", "before_posting"])
async def test_after_a_crash_mid_send_the_next_instance_posts_the_direct_message_once(
    wired, slack, database_url: str, crash: str
) -> None:
    """An instance stops while Slack holds its post (after posting it, or before it got through); once its lease
    has run out another instance finds the notification claimed but never confirmed, and looks in the direct
    message's history (by the notification id in the message metadata) before posting."""
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    await tell(desk, case_id, BEN_ON_SLACK, messages.OVERDUE, "overdue|1", title="Call them", due_at=None)
    slack.stall = crash
    crashed = asyncio.create_task(deliver(desk, notifiers))
    assert await asyncio.to_thread(slack.stalled.wait, 10)
    crashed.cancel()  # the instance dies mid-send: no result is recorded
    with contextlib.suppress(asyncio.CancelledError):
        await crashed
    [held] = await desk.notifications()
    assert held.status == "pending" and held.lease_token is not None

    assert await deliver(desk, notifiers) == 0, "nobody takes it while the lease holds"
    desk.clock.advance(minutes=3)  # the dead instance's lease runs out
    other_engine = make_engine(database_url)
    try:
        sent = await deliver_due(
            make_sessionmaker(other_engine), notifiers=notifiers, clock=desk.clock, rounds=3, backoff=timedelta(0)
        )
    finally:
        await other_engine.dispose()

    assert sent == 1 and len(slack.texts_to("U0BEN")) == 1, "posted once, by whichever instance got it through"
    assert slack.history_reads == 1
    [notification] = await desk.notifications()
    assert notification.status == "sent"


async def test_announcing_the_same_thing_twice_queues_it_once(wired, smtp) -> None:
    desk, notifiers = wired
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    await tell(desk, case_id, ANA, messages.OVERDUE, "overdue|task-1|0", title="Call", due_at=None)
    await tell(desk, case_id, ANA, messages.OVERDUE, "overdue|task-1|0", title="Call", due_at=None)
    assert len(await desk.notifications()) == 2  # one per channel Ana chose
    assert await deliver(desk, notifiers) == 2
    assert len(smtp.mailbox.emails()) == 1


async def test_an_smtp_server_whose_certificate_is_not_trusted_gets_nothing(database_url, smtp, slack) -> None:
    settings = notifier_settings(smtp, slack, smtp_ca_file=None)  # the system's authorities only
    async with httpx.AsyncClient(timeout=5) as client:
        notifiers = build_notifiers(outreach_settings(**settings), client)
        desk, engine = await open_desk(database_url, channels=("email",), **settings)
        case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
        await tell(desk, case_id, ANA, messages.OVERDUE, "overdue|1", title="Call", due_at=None)
        assert await deliver(desk, notifiers, rounds=1) == 0
        [notification] = await desk.notifications()
        assert notification.status == "failed" and "certificate" in (notification.last_error or "").lower()
        assert smtp.mailbox.emails() == []
        await engine.dispose()


@pytest.mark.postgres
async def test_two_instances_deliver_each_notification_once_even_when_sending_outlasts_the_lease(
    postgres_url: str, smtp: SmtpServer, slack: FakeSlack
) -> None:
    """A slow mail relay holds each send longer than a lease; renewals keep the other instance off it."""
    settings = notifier_settings(smtp, slack)
    smtp.mailbox.delay_seconds = 0.3
    desk, engine = await open_desk(postgres_url, channels=("email",), clock=FakeClock(), **settings)
    case_id = await desk.receive(diagnosis(root_cause="known_issue", priority=10))
    people = [Recipient(email=f"p{i}@example.com", name=f"P{i}", channels=("email",)) for i in range(6)]
    for person in people:
        await tell(desk, case_id, person, messages.OVERDUE, "overdue|1", title="Call", due_at=None)
    second_engine = make_engine(postgres_url)
    clock = SystemClock()  # leases run on the wall clock here, so they really expire
    lease = timedelta(seconds=0.2)
    async with httpx.AsyncClient(timeout=5) as client:
        notifiers = build_notifiers(outreach_settings(**settings), client)

        async def instance(sessions) -> int:
            sent = 0
            for _ in range(8):
                sent += await deliver_due(
                    sessions, notifiers=notifiers, clock=clock, rounds=3, backoff=timedelta(0), lease=lease
                )
                await asyncio.sleep(0.1)
            return sent

        sent = await asyncio.gather(instance(desk.sessions), instance(make_sessionmaker(second_engine)))
    assert sum(sent) == 6
    assert sorted(smtp.mailbox.ids()) == sorted(n.id for n in await desk.notifications())
    assert {n.status for n in await desk.notifications()} == {"sent"}
    await second_engine.dispose()
    await engine.dispose()


def test_a_team_notification_never_goes_to_a_personal_channel() -> None:
    case = Case(priority=99)
    policy = Policy(playbooks={}, rotations={})
    assert wants("slack", kind="case.escalated", case=case, policy=policy)
    assert not wants("email", kind="case.escalated", case=case, policy=policy)
    assert not wants("slack_dm", kind="case.opened", case=case, policy=policy)
