"""Floods of duplicates and shuffled orders through all three services on PostgreSQL and the real broker.

Floods: every event delivered several times at once; each is accepted exactly once and ends as one case, one
diagnosis and one set of tasks. Shuffles: each subscription's events arrive in a random order (withdrawn before
received, old updates after new ones); intake publishes them in their own order only — a late older event is
superseded, the newest always counts — and a cancellation withdrawn before it arrived never opens a case.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from services.diagnosis.models import Diagnosis
from services.intake.models import outbox as intake_outbox
from services.outreach.models import Case, Task
from tests.commands import delete_vhost, rabbitmqctl
from tests.conftest import STRIPE_SECRET, Brink, eventually, new_postgres_database, start_brink
from tests.helpers import signed, stripe_event, stripe_subscription

COPIES = 5
# Requests in flight at once: enough to race duplicates, few enough to stay within the shared PostgreSQL's
# connection limit while other suites use it too.
IN_FLIGHT = 10


@pytest.fixture(scope="module")
async def own_postgres_url() -> AsyncIterator[str]:
    """A database of this module's own: its hundreds of cases must not become other tests' traffic."""
    async with new_postgres_database("brink_floods") as url:
        yield url


@pytest.fixture(scope="module")
async def own_amqp_url(amqp_url: str) -> AsyncIterator[str]:
    """A virtual host of this module's own, for the same reason as its database."""
    parts = urlsplit(amqp_url)
    if not parts.path.strip("/"):
        yield amqp_url  # a fixed broker URL was given (BRINK_TEST_AMQP_URL): share it
        return
    vhost = f"brink-floods-{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(rabbitmqctl, "add_vhost", vhost)
    try:
        await asyncio.to_thread(
            rabbitmqctl, "set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*"
        )
        yield amqp_url.rsplit("/", 1)[0] + "/" + vhost
    finally:
        await asyncio.to_thread(delete_vhost, vhost)


@pytest.fixture
async def brink_pg(own_postgres_url: str, own_amqp_url: str) -> AsyncIterator[Brink]:
    async with AsyncExitStack() as stack:
        yield await start_brink(stack, database_url=own_postgres_url, amqp_url=own_amqp_url)


async def post(brink: Brink, event: dict[str, Any]) -> dict[str, Any]:
    body, headers = signed(event, STRIPE_SECRET)
    response = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def rows(brink: Brink, service: str, query: Any) -> list[Any]:
    async with brink.apps[service].state.runtime.sessions() as session:
        return list((await session.execute(query)).all())


async def published_by_intake(brink: Brink) -> dict[str, list[dict[str, Any]]]:
    """Envelopes intake staged, per cancellation, in the order it staged them."""
    staged: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (body,) in await rows(brink, "intake", select(intake_outbox.c.body).order_by(intake_outbox.c.id)):
        envelope = json.loads(body)
        staged[envelope["data"].get("cancellation_id", "")].append(envelope)
    return staged


def queued_messages(amqp_url: str) -> int:
    """Messages ready or unacknowledged in this run's virtual host, dead-letter queues aside."""
    vhost = urlsplit(amqp_url).path.lstrip("/") or "/"
    listing = rabbitmqctl("list_queues", "-p", vhost, "--no-table-headers", "name", "messages")
    depths = [line.split() for line in listing.splitlines()]
    return sum(
        int(depth)
        for name, depth in (row for row in depths if len(row) == 2)
        if not name.endswith(".dead") and name != "brink.unrouted"
    )


async def settled(brink: Brink, amqp_url: str) -> None:
    """A fresh marker event has gone all the way to a case, every outbox is empty, and no queue holds a
    message (so nothing from this test reaches the next one's consumers)."""
    marker = stripe_subscription()
    await post(brink, stripe_event("customer.subscription.deleted", marker))

    async def marker_case() -> bool:
        found = await rows(brink, "outreach", select(Case.id).where(Case.cancellation_id == f"stripe:{marker['id']}"))
        return bool(found)

    await eventually(marker_case, timeout=30)
    for _ in range(3):  # empty three times in a row: a message between two hops is not missed
        for service in ("intake", "diagnosis", "outreach"):
            runtime = brink.apps[service].state.runtime
            await eventually(lambda r=runtime: _outbox_empty(r), timeout=15)
        await eventually(lambda: asyncio.to_thread(lambda: queued_messages(amqp_url) == 0), timeout=30, interval=0.3)


async def _outbox_empty(runtime: Any) -> bool:
    async with runtime.sessions() as session:
        pending = await session.scalar(
            select(func.count()).select_from(runtime.outbox).where(runtime.outbox.c.published_at.is_(None))
        )
    return pending == 0


async def test_a_flood_of_concurrent_duplicates_is_applied_once(brink_pg: Brink, own_amqp_url: str) -> None:
    brink = brink_pg
    events = [stripe_event("customer.subscription.deleted", stripe_subscription(feedback="unused")) for _ in range(15)]
    deliveries = [event for event in events for _ in range(COPIES)]
    random.shuffle(deliveries)

    gate = asyncio.Semaphore(IN_FLIGHT)

    async def deliver(event: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            return await post(brink, event)

    answers = await asyncio.gather(*(deliver(event) for event in deliveries))

    outcomes = Counter((answer["event_id"], answer["outcome"]) for answer in answers)
    for event in events:
        assert outcomes[(event["id"], "accepted")] == 1, outcomes
        assert outcomes[(event["id"], "duplicate")] == COPIES - 1, outcomes
    await settled(brink, own_amqp_url)
    ids = [f"stripe:{event['data']['object']['id']}" for event in events]
    staged = await published_by_intake(brink)
    assert all(len(staged[cancellation]) == 1 for cancellation in ids)
    diagnoses = Counter(
        dict(
            await rows(
                brink,
                "diagnosis",
                select(Diagnosis.cancellation_id, func.count())
                .where(Diagnosis.cancellation_id.in_(ids))
                .group_by(Diagnosis.cancellation_id),
            )
        )
    )
    cases = Counter(
        dict(
            await rows(
                brink,
                "outreach",
                select(Case.cancellation_id, func.count())
                .where(Case.cancellation_id.in_(ids))
                .group_by(Case.cancellation_id),
            )
        )
    )
    assert diagnoses == Counter(dict.fromkeys(ids, 1))
    assert cases == Counter(dict.fromkeys(ids, 1))
    repeated_steps = await rows(
        brink,
        "outreach",
        select(Task.case_id, Task.position).group_by(Task.case_id, Task.position).having(func.count() > 1),
    )
    assert repeated_steps == []


def history(now: int) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """One subscription's life in Stripe's order: scheduled, removed, scheduled again, then cancelled."""
    scheduled = stripe_subscription(status="active", cancel_at_period_end=True, ended_at=None, canceled_at=None)
    removed = dict(scheduled, cancel_at_period_end=False)
    steps = [
        (
            "received",
            stripe_event(
                "customer.subscription.updated",
                scheduled,
                created=now - 40,
                previous_attributes={"cancel_at_period_end": False},
            ),
        ),
        (
            "withdrawn",
            stripe_event(
                "customer.subscription.updated",
                removed,
                created=now - 30,
                previous_attributes={"cancel_at_period_end": True},
            ),
        ),
        (
            "received",
            stripe_event(
                "customer.subscription.updated",
                scheduled,
                created=now - 20,
                previous_attributes={"cancel_at_period_end": False},
            ),
        ),
        (
            "received",
            stripe_event(
                "customer.subscription.deleted",
                dict(scheduled, status="canceled", ended_at=now - 10, canceled_at=now - 10),
                created=now - 10,
            ),
        ),
    ]
    return f"stripe:{scheduled['id']}", steps


async def test_shuffled_histories_are_published_in_their_own_order(brink_pg: Brink, own_amqp_url: str) -> None:
    brink = brink_pg
    rng = random.Random(20261124)
    now = int(time.time())
    histories = dict(history(now) for _ in range(12))
    orders: dict[str, list[int]] = {}
    for cancellation, steps in histories.items():
        length = rng.randint(2, len(steps))  # some lives stop early: withdrawn or rescheduled is the newest
        order = list(range(length))
        rng.shuffle(order)
        orders[cancellation] = order

    async def deliver(cancellation: str) -> None:
        for index in orders[cancellation]:
            await post(brink, histories[cancellation][index][1])

    await asyncio.gather(*(deliver(cancellation) for cancellation in histories))
    await settled(brink, own_amqp_url)

    staged = await published_by_intake(brink)
    for cancellation, order in orders.items():
        steps = histories[cancellation][: len(order)]
        versions = [envelope["data"]["state_version"] for envelope in staged[cancellation]]
        # Never an older event after a newer one, and the newest event always goes out.
        assert versions == sorted(set(versions)), (cancellation, order, versions)
        assert versions and versions[-1] == steps[-1][1]["created"], (cancellation, order, versions)
        expected_type = f"cancellation.{steps[-1][0]}"
        assert staged[cancellation][-1]["type"] == expected_type, (cancellation, order, staged[cancellation])


async def test_withdrawn_before_received_never_opens_a_case(brink_pg: Brink, own_amqp_url: str) -> None:
    brink = brink_pg
    now = int(time.time())
    cancellation, steps = history(now)
    (_, received), (_, withdrawn) = steps[0], steps[1]

    assert (await post(brink, withdrawn))["outcome"] == "accepted"
    late = await post(brink, received)

    assert late["outcome"] == "superseded"
    await settled(brink, own_amqp_url)
    assert [envelope["type"] for envelope in (await published_by_intake(brink))[cancellation]] == [
        "cancellation.withdrawn"
    ]
    assert await rows(brink, "outreach", select(Case.id).where(Case.cancellation_id == cancellation)) == []
    assert await rows(brink, "diagnosis", select(Diagnosis.id).where(Diagnosis.cancellation_id == cancellation)) == []


async def test_an_old_update_after_the_cancellation_changes_nothing(brink_pg: Brink, own_amqp_url: str) -> None:
    brink = brink_pg
    now = int(time.time())
    cancellation, steps = history(now)
    deleted, early_removal = steps[3][1], steps[1][1]

    assert (await post(brink, deleted))["outcome"] == "accepted"
    assert (await post(brink, early_removal))["outcome"] == "superseded"

    await settled(brink, own_amqp_url)
    assert [envelope["type"] for envelope in (await published_by_intake(brink))[cancellation]] == [
        "cancellation.received"
    ]
    [(status,)] = await rows(brink, "outreach", select(Case.status).where(Case.cancellation_id == cancellation))
    assert status == "open"
