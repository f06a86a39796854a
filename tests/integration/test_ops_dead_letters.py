"""Dead letters on the real broker and database: see why a message died, fix the cause, replay it once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable

import pytest

from shared import dlq
from shared.consumer import ATTEMPT_HEADER, ERROR_HEADER
from shared.messaging import Broker, QueueSpec
from tests.conftest import eventually
from tests.ops_helpers import (
    PlaybookHandler,
    diagnosis_completed,
    handled_rows,
    running_consumer,
    sample,
    send_to_queue,
)


async def dead_count(amqp_url: str, queue: str) -> int:
    return (await dlq.count_dead_letters(amqp_url, [queue]))[dlq.dead_queue_name(queue)] or 0


async def test_poison_message_is_dead_lettered_with_its_reason_then_replayed_and_processed_once(
    database_url: str, amqp_url: str
) -> None:
    handler = PlaybookHandler()
    async with running_consumer(database_url=database_url, amqp_url=amqp_url, handler=handler) as consumer:
        queue = consumer.spec.name
        dead_before = sample("brink_messages_dead_lettered_total", queue=queue)
        poison = diagnosis_completed(playbook="win-back-annual")
        await send_to_queue(amqp_url, queue, poison)

        await eventually(lambda: dead_count(amqp_url, queue), timeout=15)
        [letter] = await dlq.list_dead_letters(amqp_url, queue)
        assert letter.message_id == str(poison.id)
        assert letter.event_type == "diagnosis.completed"
        assert letter.original_queue == queue
        assert letter.reason == "LookupError: no playbook named 'win-back-annual'"
        assert letter.failed_at
        assert handler.attempts == 1 + len(consumer.spec.retry_delays)  # first try and every retry, then dead
        assert handler.processed == []
        assert sample("brink_messages_dead_lettered_total", queue=queue) == dead_before + 1
        # Listing read the message without taking it away.
        assert await dead_count(amqp_url, queue) == 1

        handler.known_playbooks.add("win-back-annual")  # the operator's fix
        replayed = await dlq.replay_dead_letters(amqp_url, queue, ids={str(poison.id)})
        assert [r.message_id for r in replayed] == [str(poison.id)]

        await eventually(lambda: asyncio.sleep(0, handler.processed), timeout=10)
        await asyncio.sleep(0.5)  # room for a stray second delivery to show up
        assert handler.processed == [str(poison.id)]
        assert await dead_count(amqp_url, queue) == 0
        assert await handled_rows(database_url, queue) == 1
        # A second replay of the same envelope would be de-duplicated, not handled twice.
        await send_to_queue(amqp_url, queue, poison)
        await eventually(
            lambda: asyncio.sleep(0, sample("brink_messages_consumed_total", queue=queue, outcome="duplicate"))
        )
        assert handler.processed == [str(poison.id)]


async def test_listing_keeps_every_message_in_order_and_replay_resets_the_retry_count(
    postgres_url: str, amqp_url: str
) -> None:
    handler = PlaybookHandler()
    async with running_consumer(
        database_url=postgres_url, amqp_url=amqp_url, handler=handler, retry_delays=(0.1,)
    ) as consumer:
        queue = consumer.spec.name
        envelopes = [diagnosis_completed(playbook=f"missing-{n}") for n in range(3)]
        for envelope in envelopes:
            await send_to_queue(amqp_url, queue, envelope)
        await eventually(lambda: _at_least(dead_count(amqp_url, queue), 3), timeout=15)
        first = [letter.message_id for letter in await dlq.list_dead_letters(amqp_url, queue)]
        assert sorted(first) == sorted(str(e.id) for e in envelopes)
        # A quorum queue applies returned messages through its log, so a new reader may lag a moment behind.
        await eventually(lambda: _listed_as(amqp_url, queue, first))
        shown = await dlq.show_dead_letter(amqp_url, queue, first[1])
        assert shown.headers[ATTEMPT_HEADER] == 1
        assert '"recommended_playbook": "missing-' in shown.pretty_body()

        message = dlq.replay_message(shown)
        assert ATTEMPT_HEADER not in message.headers and ERROR_HEADER not in message.headers
        assert message.headers[dlq.REPLAYED_HEADER] == 1

        with pytest.raises(dlq.DeadLetterError, match="not in"):
            await dlq.replay_dead_letters(amqp_url, queue, ids={"no-such-id"})
        await eventually(lambda: _listed_as(amqp_url, queue, first))

        dropped = await dlq.purge_dead_letters(amqp_url, queue, ids={first[0]})
        assert [d.message_id for d in dropped] == [first[0]]
        await eventually(lambda: _listed_as(amqp_url, queue, first[1:]))


async def _listed_as(amqp_url: str, queue: str, expected: list[str]) -> bool:
    return [letter.message_id for letter in await dlq.list_dead_letters(amqp_url, queue)] == expected


async def _at_least(count: Awaitable[int], minimum: int) -> bool:
    return (await count) >= minimum


def brink_cli(*args: str, amqp_url: str) -> subprocess.CompletedProcess[str]:
    """Run the real ``brink`` command line, with no terminal attached."""
    env = {**os.environ, "BRINK_AMQP_URL": amqp_url}
    return subprocess.run(
        [sys.executable, "-c", "from shared.cli import main; main()", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def purge_at_terminal(queue: str, *, answer: str, amqp_url: str) -> subprocess.CompletedProcess[str]:
    """``brink dlq purge --all`` with a real terminal on stdin, answering its confirmation question."""
    leader, follower = os.openpty()
    try:
        os.write(leader, answer.encode() + b"\n")
        env = {**os.environ, "BRINK_AMQP_URL": amqp_url}
        return subprocess.run(
            [sys.executable, "-c", "from shared.cli import main; main()", "dlq", "purge", queue, "--all"],
            stdin=follower,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
    finally:
        os.close(leader)
        os.close(follower)


async def test_cli_lists_replays_and_purges_only_with_confirmation(postgres_url: str, amqp_url: str) -> None:
    handler = PlaybookHandler()
    async with running_consumer(
        database_url=postgres_url, amqp_url=amqp_url, handler=handler, retry_delays=(0.1,)
    ) as consumer:
        queue = consumer.spec.name
        keep, drop = diagnosis_completed(playbook="annual"), diagnosis_completed(playbook="nope")
        for envelope in (keep, drop):
            await send_to_queue(amqp_url, queue, envelope)
        await eventually(lambda: _at_least(dead_count(amqp_url, queue), 2), timeout=15)

        listing = await asyncio.to_thread(brink_cli, "dlq", "list", queue, amqp_url=amqp_url)
        assert listing.returncode == 0, listing.stderr
        assert f"{queue}.dead: 2 messages" in listing.stdout
        assert str(keep.id) in listing.stdout and "reason: LookupError: no playbook named 'annual'" in listing.stdout

        refused = await asyncio.to_thread(brink_cli, "dlq", "purge", queue, "--all", amqp_url=amqp_url)
        assert refused.returncode == 2 and "--yes" in refused.stderr
        assert await dead_count(amqp_url, queue) == 2

        handler.known_playbooks.add("annual")
        replay = await asyncio.to_thread(brink_cli, "dlq", "replay", queue, "--id", str(keep.id), amqp_url=amqp_url)
        assert replay.returncode == 0, replay.stderr
        assert f"replayed {keep.id} to {queue}" in replay.stdout
        await eventually(lambda: asyncio.sleep(0, handler.processed == [str(keep.id)]))

        declined = await asyncio.to_thread(purge_at_terminal, queue, answer="no", amqp_url=amqp_url)
        assert declined.returncode == 1 and "nothing deleted" in declined.stdout
        assert "Type the queue name to confirm" in declined.stdout
        assert await dead_count(amqp_url, queue) == 1

        purge = await asyncio.to_thread(brink_cli, "dlq", "purge", queue, "--all", "--yes", amqp_url=amqp_url)
        assert purge.returncode == 0 and "1 message deleted" in purge.stdout
        assert await dead_count(amqp_url, queue) == 0

        missing = await asyncio.to_thread(brink_cli, "dlq", "show", "nothing.here", "x", amqp_url=amqp_url)
        assert missing.returncode == 1 and "does not exist" in missing.stderr


async def test_a_message_the_broker_dead_lettered_shows_the_x_death_reason_and_replays_clean(amqp_url: str) -> None:
    """A crash loop: the quorum queue's delivery limit, not our consumer, moved the message to the dead queue."""
    broker = Broker(amqp_url)
    await broker.connect()
    try:
        spec = QueueSpec(name=f"opstest.{uuid.uuid4().hex[:8]}", routing_keys=(), retry_delays=(), delivery_limit=1)
        await broker.declare_queue(spec)
        envelope = diagnosis_completed()
        await send_to_queue(amqp_url, spec.name, envelope)
        channel = await broker.consumer_channel(prefetch=1)
        queue = await channel.get_queue(spec.name, ensure=False)
        for _ in range(2):  # delivered, returned, delivered again, returned: over the limit of 1
            message = await eventually(lambda: queue.get(no_ack=False, fail=False))
            await message.nack(requeue=True)
        await eventually(lambda: dead_count(amqp_url, spec.name))

        [letter] = await dlq.list_dead_letters(amqp_url, spec.name)
        assert letter.original_queue == spec.name
        assert letter.reason.startswith("broker dead-lettered it: delivery_limit")
        assert letter.failed_at

        await dlq.replay_dead_letters(amqp_url, spec.name)
        replayed = await eventually(lambda: queue.get(no_ack=False, fail=False))
        assert replayed.message_id == str(envelope.id) and replayed.body == envelope.to_bytes()
        assert "x-death" not in (replayed.headers or {})
        assert replayed.headers[dlq.REPLAYED_HEADER] == 1
        await replayed.ack()
    finally:
        await broker.close()
