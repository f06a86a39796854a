"""Sends signed webhooks the way Stripe does: each attempt freshly signed, retried on any non-2xx or
connection error with backoff, until a 2xx or the attempts run out."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.signing import stripe_signature_header


@dataclass
class Delivery:
    """One event and what happened to every attempt to deliver it."""

    event_id: str
    cancellation_id: str
    body: bytes
    statuses: list[int | str] = field(default_factory=list)
    accepted: bool = False
    extra_copies: int = 0
    first_sent_at: float | None = None  # wall-clock time of the first attempt

    @property
    def attempts(self) -> int:
        return len(self.statuses)


@dataclass(frozen=True)
class RetryPolicy:
    """Stripe retries for days; the run bounds it in attempts and seconds so it always ends."""

    max_attempts: int = 40
    max_seconds: float = 150.0
    first_delay: float = 0.25
    max_delay: float = 4.0


def delivery_for(event: dict[str, Any]) -> Delivery:
    subscription = event["data"]["object"]
    return Delivery(
        event_id=event["id"], cancellation_id=f"stripe:{subscription['id']}", body=json.dumps(event).encode()
    )


async def post_once(client: httpx.AsyncClient, url: str, secret: str, body: bytes) -> int | str:
    """One attempt: the status code, or the name of the connection error."""
    headers = {"Stripe-Signature": stripe_signature_header([secret], body), "Content-Type": "application/json"}
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as error:
        return error.__class__.__name__
    return response.status_code


async def deliver(
    client: httpx.AsyncClient,
    urls: str | Sequence[str],
    secret: str,
    delivery: Delivery,
    policy: RetryPolicy = RetryPolicy(),
) -> None:
    """Deliver until 2xx, like Stripe; records every attempt's outcome. With several intake instances each attempt
    goes to the next one, as a load balancer in front of them would send a retry to a live one."""
    endpoints = [urls] if isinstance(urls, str) else list(urls)
    started = time.monotonic()
    delivery.first_sent_at = delivery.first_sent_at or time.time()
    delay = policy.first_delay
    while delivery.attempts < policy.max_attempts and time.monotonic() - started < policy.max_seconds:
        url = endpoints[(hash(delivery.event_id) + delivery.attempts) % len(endpoints)]
        status = await post_once(client, url, secret, delivery.body)
        delivery.statuses.append(status)
        if isinstance(status, int) and 200 <= status < 300:
            delivery.accepted = True
            return
        await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(delay * 2, policy.max_delay)


class Stream:
    """A paced stream of deliveries, with some events delivered twice as Stripe sometimes does."""

    def __init__(
        self,
        *,
        url: str | Sequence[str],
        secret: str,
        rate_per_second: float,
        concurrency: int = 16,
        duplicate_ratio: float = 0.05,
    ) -> None:
        self.url = url
        self.secret = secret
        self.rate = rate_per_second
        self.concurrency = concurrency
        self.duplicate_ratio = duplicate_ratio
        self.deliveries: list[Delivery] = []
        self.finished = 0

    async def run(
        self,
        make_event: Callable[[int], dict[str, Any]],
        *,
        at_least: int,
        until: asyncio.Future[Any] | None = None,
        tail_seconds: float = 5.0,
    ) -> list[Delivery]:
        """Send ``at_least`` events, and keep sending while ``until`` is pending and ``tail_seconds`` after,
        so every fault lands in the middle of the stream however long the machine takes to inject it."""
        self.deliveries = []
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        gate = asyncio.Semaphore(self.concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0), limits=limits) as client:

            async def one(delivery: Delivery) -> None:
                async with gate:
                    await deliver(client, self.url, self.secret, delivery)
                    if delivery.accepted and random.random() < self.duplicate_ratio:
                        delivery.extra_copies += 1
                        await deliver(
                            client,
                            self.url,
                            self.secret,
                            Delivery(delivery.event_id, delivery.cancellation_id, delivery.body),
                        )
                self.finished += 1

            tasks = []
            started = time.monotonic()
            tail_ends: float | None = None
            index = 0
            while True:
                if index >= at_least:
                    if until is not None and not until.done():
                        tail_ends = None
                    elif tail_ends is None:
                        tail_ends = time.monotonic() + (tail_seconds if until is not None else 0.0)
                    if tail_ends is not None and time.monotonic() >= tail_ends:
                        break
                # Paced, so the stream lasts long enough for the faults to land in it.
                await asyncio.sleep(max(0.0, started + index / self.rate - time.monotonic()))
                delivery = delivery_for(make_event(index))
                self.deliveries.append(delivery)
                tasks.append(asyncio.create_task(one(delivery)))
                index += 1
            await asyncio.gather(*tasks)
        return self.deliveries
