"""Group commit: webhooks that arrive while earlier ones are being written are recorded by one statement.

Under load most of a webhook's cost is per statement, not per row: the driver's round trip, PostgreSQL's
parse-plan-execute and the commit's WAL flush. A few statements in flight, each carrying every delivery that
arrived meanwhile, keeps one commit per webhook when traffic is light (a delivery is sent at once when a
slot is free) and shares commits when it is heavy. Each caller still waits for its own row's commit before
its 2xx, so nothing is answered that is not durable.

Two deliveries that share a key (the same vendor event, or the same subscription) are never in flight at
once: the later one waits for the next statement, so each statement's rows are independent and their
outcomes are the ones one statement per delivery would have given, in arrival order.

Plain asyncio; the statement is the caller's ``write`` (see ``postgres_deliveries``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    keys: tuple[Hashable, ...]
    future: asyncio.Future[Result] = field(repr=False)


class GroupCommitter(Generic[Item, Result]):
    """Sends items to ``write`` in batches; ``submit`` returns one item's result once its batch is written.

    ``write`` takes a batch and returns one result per item, in order. When it raises for a batch of several
    items and ``isolate(error)`` is true (a bad row, a deadlock with another writer), each item is written
    alone, so one bad delivery fails only its own request; otherwise (the database is down) every caller in
    the batch gets the error.
    """

    def __init__(
        self,
        write: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        isolate: Callable[[BaseException], bool],
        max_in_flight: int,
        max_batch: int,
        observe_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_in_flight < 1 or max_batch < 1:
            raise ValueError("max_in_flight and max_batch must be at least 1")
        self._write = write
        self._isolate = isolate
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch
        self._observe_batch = observe_batch
        self._waiting: list[_Waiting[Item, Result]] = []
        self._busy_keys: set[Hashable] = set()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def submit(self, item: Item, keys: tuple[Hashable, ...]) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(item, keys, future))
        if not self._scheduled:
            # Deferred to the loop's next turn, so every request that turn reads joins the same statement.
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._dispatch)
        return await future

    async def drain(self) -> None:
        """Wait for the statements already sent (at shutdown, before the pool closes)."""
        while self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _dispatch(self) -> None:
        self._scheduled = False
        while self._waiting and len(self._in_flight) < self._max_in_flight:
            batch = self._take_batch()
            if not batch:
                return  # everything waiting shares a key with a statement in flight; its end dispatches again
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._in_flight.add(task)

    def _take_batch(self) -> list[_Waiting[Item, Result]]:
        batch: list[_Waiting[Item, Result]] = []
        left: list[_Waiting[Item, Result]] = []
        held_back: set[Hashable] = set()  # keys of earlier items left waiting: nothing later may overtake them
        for waiting in self._waiting:
            if waiting.future.done():  # its request went away before it was sent
                continue
            if (
                len(batch) < self._max_batch
                and self._busy_keys.isdisjoint(waiting.keys)
                and held_back.isdisjoint(waiting.keys)
            ):
                batch.append(waiting)
                self._busy_keys.update(waiting.keys)
            else:
                left.append(waiting)
                held_back.update(waiting.keys)
        self._waiting = left
        return batch

    async def _send(self, batch: list[_Waiting[Item, Result]]) -> None:
        try:
            if self._observe_batch is not None:
                self._observe_batch(len(batch))
            await self._write_and_settle(batch)
        finally:
            for waiting in batch:
                self._busy_keys.difference_update(waiting.keys)
                if not waiting.future.done():  # only when this task was cancelled (shutdown)
                    waiting.future.cancel()
            self._in_flight.discard(asyncio.current_task())
            self._dispatch()

    async def _write_and_settle(self, batch: list[_Waiting[Item, Result]]) -> None:
        try:
            results = await self._write([waiting.item for waiting in batch])
        except Exception as error:
            if len(batch) > 1 and self._isolate(error):
                for waiting in batch:
                    await self._write_and_settle([waiting])
                return
            for waiting in batch:
                if not waiting.future.done():
                    waiting.future.set_exception(error)
            return
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.future.done():
                waiting.future.set_result(result)
