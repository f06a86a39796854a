"""A consumer's commit that staged events wakes the outbox relay: its events leave at once, not at the next poll."""

from __future__ import annotations

from tests.diagnosis_helpers import cancellation, running_diagnosis


async def test_a_diagnosis_is_published_on_its_commit_without_waiting_for_a_poll(
    database_url: str, amqp_url: str
) -> None:
    """The relay polls once an hour here: only the wake-up of the consumer's commit can publish the diagnosis
    in time. (On PostgreSQL the diagnosis and its outbox row are one statement, which marks the session itself.)"""
    event = cancellation(feedback="too_expensive")
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url, outbox_poll_seconds=3600) as diagnosis:
        await diagnosis.publish(event)
        [completed] = await diagnosis.completed_for(event.cancellation_id)
    assert completed["cancellation_id"] == event.cancellation_id
