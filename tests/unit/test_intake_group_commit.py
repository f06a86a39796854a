"""Group commit, without a database: batches, keys that never share a statement, and errors kept to their owner."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services.intake.group_commit import GroupCommitter


class BadRow(Exception):
    """A row the database refuses (isolated: only its own caller should see it)."""


class Outage(Exception):
    """The database is down (not isolated: every caller in the batch sees it)."""


class RecordingWriter:
    """A ``write`` that remembers each batch, holds it open until released, and fails on request."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.alongside: dict[str, list[str]] = {}  # item -> the items already being written when its batch began
        self.in_flight: list[list[str]] = []
        self.bad: set[str] = set()
        self.down = False
        self.pause = 0.005

    async def __call__(self, items: Sequence[str]) -> list[str]:
        batch = list(items)
        self.batches.append(batch)
        for item in batch:
            self.alongside[item] = [other for running in self.in_flight for other in running]
        self.in_flight.append(batch)
        try:
            await asyncio.sleep(self.pause)
            if self.down:
                raise Outage("connection refused")
            if self.bad & set(batch):
                raise BadRow(f"bad row in {batch}")
            return [f"stored {item}" for item in batch]
        finally:
            self.in_flight.remove(batch)


def committer(writer: RecordingWriter, *, max_in_flight: int = 2, max_batch: int = 100) -> GroupCommitter[str, str]:
    return GroupCommitter(
        writer, isolate=lambda error: isinstance(error, BadRow), max_in_flight=max_in_flight, max_batch=max_batch
    )


async def test_concurrent_items_share_statements_and_each_caller_gets_its_own_result() -> None:
    writer = RecordingWriter()
    commits = committer(writer)
    results = await asyncio.gather(*(commits.submit(f"event-{n}", (f"event-{n}",)) for n in range(40)))
    assert results == [f"stored event-{n}" for n in range(40)]
    assert sorted(item for batch in writer.batches for item in batch) == sorted(f"event-{n}" for n in range(40))
    assert len(writer.batches) <= 4  # 40 arrivals in one turn of the loop: a statement or two, not forty


async def test_a_lone_item_is_written_at_once_without_waiting_for_company() -> None:
    writer = RecordingWriter()
    commits = committer(writer)
    assert await asyncio.wait_for(commits.submit("only", ("only",)), timeout=1) == "stored only"
    assert writer.batches == [["only"]]


async def test_no_more_statements_are_in_flight_than_allowed_and_batches_are_capped() -> None:
    writer = RecordingWriter()
    commits = committer(writer, max_in_flight=2, max_batch=5)
    most_in_flight = 0

    async def watch() -> None:
        nonlocal most_in_flight
        while True:
            most_in_flight = max(most_in_flight, len(writer.in_flight))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(commits.submit(f"event-{n}", (f"event-{n}",)) for n in range(23)))
    watcher.cancel()
    assert most_in_flight == 2
    assert max(len(batch) for batch in writer.batches) == 5
    assert len(writer.batches) == 5  # 5 + 5 + 5 + 5 + 3


async def test_items_with_a_key_in_common_are_never_written_together_and_keep_their_order() -> None:
    writer = RecordingWriter()
    commits = committer(writer, max_in_flight=4)
    # Three versions of one subscription, among unrelated events, all arriving at once.
    arrivals = [
        ("sub-1 v1", ("sub-1",)),
        ("other-a", ("other-a",)),
        ("sub-1 v2", ("sub-1",)),
        ("other-b", ("other-b",)),
        ("sub-1 v3", ("sub-1",)),
    ]
    await asyncio.gather(*(commits.submit(item, keys) for item, keys in arrivals))
    batches_with_sub_1 = [batch for batch in writer.batches if any(item.startswith("sub-1") for item in batch)]
    assert [[item for item in batch if item.startswith("sub-1")] for batch in batches_with_sub_1] == [
        ["sub-1 v1"],
        ["sub-1 v2"],
        ["sub-1 v3"],
    ]
    # Not even in two statements at once, with four allowed in flight.
    assert not any(other.startswith("sub-1") for item in ("sub-1 v2", "sub-1 v3") for other in writer.alongside[item])


async def test_an_item_held_back_by_one_key_is_not_overtaken_on_its_other_key() -> None:
    writer = RecordingWriter()
    writer.pause = 0.02
    commits = committer(writer, max_in_flight=4)
    first = asyncio.create_task(commits.submit("evt-1 copy", ("evt-1",)))
    await asyncio.sleep(0.005)  # being written
    # A retry of evt-1 for subscription S waits for the copy in flight; a newer event of S arrives after it.
    retried = asyncio.create_task(commits.submit("evt-1 sub-S", ("evt-1", "sub-S")))
    newer = asyncio.create_task(commits.submit("evt-2 sub-S", ("evt-2", "sub-S")))
    await asyncio.gather(first, retried, newer)
    order = [item for batch in writer.batches for item in batch]
    assert order.index("evt-1 sub-S") < order.index("evt-2 sub-S")


async def test_a_bad_row_fails_only_its_own_caller_and_the_rest_of_its_batch_is_stored() -> None:
    writer = RecordingWriter()
    writer.bad = {"event-3"}
    commits = committer(writer)
    results = await asyncio.gather(
        *(commits.submit(f"event-{n}", (f"event-{n}",)) for n in range(8)), return_exceptions=True
    )
    assert isinstance(results[3], BadRow)
    assert [result for n, result in enumerate(results) if n != 3] == [f"stored event-{n}" for n in range(8) if n != 3]
    assert ["event-3"] in writer.batches  # tried alone after its batch failed


async def test_when_the_database_is_down_every_caller_in_the_batch_gets_the_error_at_once() -> None:
    writer = RecordingWriter()
    writer.down = True
    commits = committer(writer, max_in_flight=1)
    results = await asyncio.gather(
        *(commits.submit(f"event-{n}", (f"event-{n}",)) for n in range(6)), return_exceptions=True
    )
    assert all(isinstance(result, Outage) for result in results)
    assert len(writer.batches) == 1  # not retried row by row against a database that is down


async def test_a_caller_that_goes_away_before_its_statement_is_not_written() -> None:
    writer = RecordingWriter()
    writer.pause = 0.05
    commits = committer(writer, max_in_flight=1)
    first = asyncio.create_task(commits.submit("first", ("first",)))
    await asyncio.sleep(0.01)  # "first" is being written; the next one waits for the slot
    gone = asyncio.create_task(commits.submit("gone", ("gone",)))
    await asyncio.sleep(0)
    gone.cancel()
    assert await first == "stored first"
    assert await commits.submit("after", ("after",)) == "stored after"
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert writer.batches == [["first"], ["after"]]


def test_limits_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        GroupCommitter(RecordingWriter(), isolate=lambda error: False, max_in_flight=0, max_batch=10)
