"""Acknowledging a channel's deliveries in runs: one ``basic.ack`` with ``multiple`` for messages settled in a row.

Every ack is a frame for the client to write and a command in the quorum queue's Raft log. Acking a batch of
32 messages one at a time cost RabbitMQ 0.14 ms and the client 0.11 ms of CPU per message; one ack with
``multiple`` for the batch, 0.06 and 0.07 (20,000 messages of 1.5 kB, prefetch 64, same hour).

An ack with ``multiple`` settles *every* unacknowledged delivery of the channel up to its tag, so it is sent
only up to the first delivery still being handled: when a later batch finishes first, its acks wait for the
earlier batch, which is never acknowledged before its own commit. Tags are per channel; after a reconnect the
new channel's deliveries are tracked apart, and the old channel's are delivered again by the broker.

A delivery of a closed channel cannot even name its channel (aio-pika raises ChannelInvalidStateError), so every
look-up here goes through ``_line``, which answers None for it: nothing is left to settle there.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress

from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import ChannelInvalidStateError

# A channel's deliveries not yet acknowledged, by delivery tag in delivery order: (message, settled).
Line = dict[int, tuple[AbstractIncomingMessage, bool]]


class Acknowledgements:
    """The deliveries received and not yet acknowledged, per channel, in the order they arrived."""

    def __init__(self) -> None:
        # channel -> {delivery tag: (message, settled)}; dicts keep insertion order, which is delivery order.
        self._channels: dict[object, Line] = {}

    def received(self, message: AbstractIncomingMessage) -> bool:
        """Track a delivery from the moment it arrives (before any decision about it); False if its channel has
        closed already: the broker delivers it again, and nothing is to be done with it here."""
        try:
            channel = message.channel
        except ChannelInvalidStateError:
            return False
        if channel not in self._channels:
            # A new channel (a reconnect): the closed ones' deliveries are the broker's to deliver again.
            for stale in [known for known in self._channels if getattr(known, "is_closed", False)]:
                del self._channels[stale]
            self._channels[channel] = {}
        assert message.delivery_tag is not None, "a consumer's deliveries carry tags"
        self._channels[channel][message.delivery_tag] = (message, False)
        return True

    async def ack(self, messages: Iterable[AbstractIncomingMessage]) -> None:
        """Acknowledge these deliveries, together with any settled earlier, as soon as none before them waits."""
        touched: list[Line] = []
        for message in messages:
            pending = self._line(message)
            if pending is None or message.delivery_tag not in pending:
                continue  # a channel closed or replaced meanwhile: its deliveries come again
            pending[message.delivery_tag] = (message, True)
            if all(line is not pending for line in touched):
                touched.append(pending)
        for pending in touched:
            await self._flush(pending)

    async def nack(self, message: AbstractIncomingMessage) -> None:
        """Give one delivery back to the broker to deliver again; it no longer holds back the acks after it."""
        pending = self._line(message)
        if pending is None:
            return  # its channel has closed: the broker delivers it again
        pending.pop(message.delivery_tag, None)  # type: ignore[arg-type]
        await message.nack(requeue=True)
        await self._flush(pending)

    async def release(self, messages: Iterable[AbstractIncomingMessage]) -> None:
        """Give back whichever of these deliveries are still unsettled (their handling ended abnormally), so
        they are delivered again rather than holding back every later ack on their channel."""
        for message in messages:
            pending = self._line(message)
            entry = pending.get(message.delivery_tag) if pending is not None else None  # type: ignore[arg-type]
            if entry is not None and not entry[1]:
                with suppress(Exception):  # a channel going away meanwhile delivers them again anyway
                    await self.nack(message)

    def _line(self, message: AbstractIncomingMessage) -> Line | None:
        """The unacknowledged deliveries of the message's channel, in order; None once that channel has closed."""
        try:
            return self._channels.get(message.channel)
        except ChannelInvalidStateError:
            return None

    @staticmethod
    async def _flush(pending: Line) -> None:
        """One ack with ``multiple`` for the run of settled deliveries at the front of a channel's line."""
        last = None
        while pending:
            tag, (message, settled) = next(iter(pending.items()))
            if not settled:
                break
            del pending[tag]
            last = message
        if last is not None:
            # Taken off the line before the await: a concurrent flush never acks the same run, and the frames
            # go out in the order the runs were taken (the channel's write queue is first in, first out).
            await last.ack(multiple=True)
