"""A commit that staged events wakes the outbox relay, whoever commits: its events leave at once, not at a poll."""

from __future__ import annotations

import asyncio

from sqlalchemy import delete, select

from services.intake.models import outbox
from shared.db import transaction, utcnow
from shared.messaging import Broker
from shared.outbox import OutboxRelay
from tests.conftest import eventually
from tests.diagnosis_helpers import cancellation, now_iso, running_diagnosis
from tests.helpers import outbox_rows

AN_HOUR = 3600


async def test_a_diagnosis_is_published_on_its_commit_without_waiting_for_a_poll(
    database_url: str, amqp_url: str
) -> None:
    """The relay polls once an hour here: only the wake-up of the consumer's commit can publish the diagnosis
    in time. (On PostgreSQL the diagnosis and its outbox row are one statement, which marks the session itself.)"""
    event = cancellation(feedback="too_expensive")
    async with running_diagnosis(
        database_url=database_url, amqp_url=amqp_url, outbox_poll_seconds=AN_HOUR
    ) as diagnosis:
        await diagnosis.publish(event)
        [completed] = await diagnosis.completed_for(event.cancellation_id)
    assert completed["cancellation_id"] == event.cancellation_id


async def test_signals_put_over_http_reach_the_rediagnosis_without_waiting_for_a_poll(
    database_url: str, amqp_url: str
) -> None:
    """New signals for an open cancellation stage account.signals_updated in the request's own transaction; its
    commit wakes the relay as a consumer's does, and the second diagnosis follows."""
    event = cancellation(feedback="too_expensive")
    async with running_diagnosis(
        database_url=database_url, amqp_url=amqp_url, outbox_poll_seconds=AN_HOUR
    ) as diagnosis:
        await diagnosis.publish(event)
        await diagnosis.completed_for(event.cancellation_id)
        signals = {"usage": {"observed_at": now_iso(), "source": "crm", "active_users": 2, "licensed_seats": 40}}
        assert (await diagnosis.put_signals(event.account_id, signals)).status_code == 200
        versions = await diagnosis.completed_for(event.cancellation_id, count=2)
    assert [v["diagnosis_version"] for v in versions] == [1, 2]


async def test_an_idle_relay_whose_polls_spaced_out_still_publishes_a_row_no_commit_announced(
    sessions, broker: Broker
) -> None:
    """Polls that find nothing space out (up to eight poll intervals); a row written where no wake-up reaches
    this relay (another process, another instance) still leaves, at the next of them."""
    relay = OutboxRelay(sessions=sessions, table=outbox, broker=broker, poll_seconds=0.1)
    running = asyncio.create_task(relay.run())
    [row] = outbox_rows(1, event_type="test.unannounced", created_at=utcnow(), published_at=None)
    try:
        await asyncio.sleep(2)  # long enough for the polls to reach their longest spacing
        async with transaction(sessions) as session:
            await session.execute(outbox.insert(), row)  # not through add_to_outbox: nothing marks or wakes

        async def published() -> bool:
            async with transaction(sessions) as session:
                sent = outbox.c.published_at.is_not(None)
                return bool(await session.scalar(select(sent).where(outbox.c.event_id == row["event_id"])))

        await eventually(published)
    finally:
        relay.stop()
        await running
        # The row is not an event (its body is "{}"): left in intake's outbox, it broke later tests that read
        # every staged envelope of the shared database.
        async with transaction(sessions) as session:
            await session.execute(delete(outbox).where(outbox.c.event_id == row["event_id"]))
