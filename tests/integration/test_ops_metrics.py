"""Scrape /metrics of each running service after real traffic and find the right figures there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

import aio_pika
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from services.outreach.models import Case, Task
from shared import dlq
from shared.db import utcnow
from tests.conftest import STRIPE_SECRET, Brink, eventually, start_brink
from tests.helpers import signed, stripe_event, stripe_subscription

CANCELLATIONS = 2
Labels = tuple[tuple[str, str], ...]


def labels(**values: str) -> Labels:
    return tuple(sorted(values.items()))


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, Labels], float]:
    """Every sample a service exposes, keyed by sample name and labels."""
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, labels(**sample.labels)): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


@dataclass(frozen=True)
class Expected:
    """A counter on one service's /metrics that must grow by exactly ``delta`` during the traffic."""

    service: str
    name: str
    labels: Labels
    delta: float


# One row per figure the traffic below must move; each service's own figures are added here as they arrive.
EXPECTED_DELTAS = [
    Expected(
        "intake",
        "brink_http_requests_total",
        labels(service="intake", route="/webhooks/stripe", method="POST", status="200"),
        CANCELLATIONS + 1,
    ),
    Expected(
        "intake",
        "brink_http_requests_total",
        labels(service="intake", route="/webhooks/stripe", method="POST", status="401"),
        1,
    ),
    Expected(
        "intake",
        "brink_http_request_duration_seconds_count",
        labels(service="intake", route="/webhooks/stripe", method="POST"),
        CANCELLATIONS + 2,
    ),
    Expected("intake", "brink_outbox_published_total", labels(table="intake_outbox"), CANCELLATIONS),
    Expected(
        "diagnosis",
        "brink_messages_consumed_total",
        labels(queue="diagnosis.cancellations", outcome="handled"),
        CANCELLATIONS,
    ),
    Expected(
        "diagnosis",
        "brink_message_handler_duration_seconds_count",
        labels(queue="diagnosis.cancellations"),
        CANCELLATIONS,
    ),
    Expected("diagnosis", "brink_outbox_published_total", labels(table="diagnosis_outbox"), CANCELLATIONS),
    Expected("diagnosis", "brink_messages_dead_lettered_total", labels(queue="diagnosis.cancellations"), 1),
    Expected(
        "diagnosis",
        "brink_messages_consumed_total",
        labels(queue="diagnosis.cancellations", outcome="dead_lettered"),
        1,
    ),
    Expected(
        "outreach",
        "brink_messages_consumed_total",
        labels(queue="outreach.diagnoses", outcome="handled"),
        CANCELLATIONS,
    ),
    Expected(
        "intake",
        "brink_webhooks_total",
        labels(source="stripe", event_type="customer.subscription.deleted", outcome="accepted"),
        CANCELLATIONS,
    ),
    Expected(
        "intake",
        "brink_webhooks_total",
        labels(source="stripe", event_type="customer.subscription.deleted", outcome="duplicate"),
        1,
    ),
    Expected("intake", "brink_webhooks_total", labels(source="stripe", event_type="unknown", outcome="rejected"), 1),
]

# Gauges read from RabbitMQ and the outbox: (service, sample name, labels, value once the traffic settled).
EXPECTED_GAUGES = [
    ("intake", "brink_outbox_backlog", labels(table="intake_outbox"), 0),
    ("intake", "brink_outbox_oldest_age_seconds", labels(table="intake_outbox"), 0),
    ("diagnosis", "brink_outbox_backlog", labels(table="diagnosis_outbox"), 0),
    ("diagnosis", "brink_queue_messages", labels(queue="diagnosis.cancellations"), 0),
    ("diagnosis", "brink_queue_consumers", labels(queue="diagnosis.cancellations"), 1),
    ("diagnosis", "brink_queue_messages", labels(queue="diagnosis.cancellations.retry.0.2s"), 0),
    ("diagnosis", "brink_queue_messages", labels(queue="diagnosis.cancellations.dead"), 1),
    ("diagnosis", "brink_queue_consumers", labels(queue="diagnosis.cancellations.dead"), 0),
    ("outreach", "brink_queue_messages", labels(queue="outreach.diagnoses"), 0),
    ("outreach", "brink_queue_consumers", labels(queue="outreach.diagnoses"), 1),
    ("outreach", "brink_queue_messages", labels(queue="outreach.diagnoses.dead"), 0),
]


@pytest.fixture
async def brink_with_fresh_gauges(postgres_url: str, own_amqp_url: str) -> AsyncIterator[Brink]:
    # A vhost of its own: messages an earlier test left in the session's queues would be counted here.
    amqp_url = own_amqp_url
    async with AsyncExitStack() as stack:
        running = await start_brink(
            stack,
            database_url=postgres_url,
            amqp_url=amqp_url,
            metrics_refresh_seconds=0.1,
            scheduler_poll_seconds=0.1,
            gauge_refresh_seconds=0.1,
        )
        # Earlier tests in this run may have left dead letters; this test counts from an empty dead queue.
        for queue in ("diagnosis.cancellations", "outreach.diagnoses"):
            await dlq.purge_dead_letters(amqp_url, queue)
        yield running


async def send_cancellations(brink: Brink) -> list[str]:
    accounts = []
    for _ in range(CANCELLATIONS):
        subscription = stripe_subscription(feedback="too_expensive")
        body, headers = signed(stripe_event("customer.subscription.deleted", subscription), STRIPE_SECRET)
        response = await brink.intake.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 200, response.text
        accounts.append(f"stripe:{subscription['customer']}")
    # Stripe retrying the last one (a duplicate), and a forgery (rejected).
    assert (await brink.intake.post("/webhooks/stripe", content=body, headers=headers)).json()["outcome"] == "duplicate"
    forged, forged_headers = signed(
        stripe_event("customer.subscription.deleted", stripe_subscription()), "whsec_forged"
    )
    assert (await brink.intake.post("/webhooks/stripe", content=forged, headers=forged_headers)).status_code == 401
    return accounts


async def send_poison(amqp_url: str) -> None:
    """A message no consumer can decode, straight into diagnosis's queue: it must go to the dead queue."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.default_exchange.publish(
            aio_pika.Message(
                b"{not json",
                message_id="ops-poison",
                type="cancellation.received",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key="diagnosis.cancellations",
        )


@dataclass
class CasePoller:
    """Waits for the cases through outreach's API, counting its own requests (they show on /metrics too)."""

    brink: Brink
    requests: int = 0

    async def all_open(self, accounts: list[str]) -> bool:
        self.requests += 1
        response = await self.brink.outreach.get("/v1/cases", headers=self.brink.auth, params={"limit": 500})
        return {case["account_id"] for case in response.json()["items"]} >= set(accounts)


async def test_each_service_exposes_its_figures_after_real_traffic(
    brink_with_fresh_gauges: Brink, own_amqp_url: str
) -> None:
    brink, amqp_url = brink_with_fresh_gauges, own_amqp_url
    clients = {"intake": brink.intake, "diagnosis": brink.diagnosis, "outreach": brink.outreach}
    before = {name: await scrape(client) for name, client in clients.items()}

    accounts = await send_cancellations(brink)
    await send_poison(amqp_url)
    poller = CasePoller(brink)
    await eventually(lambda: poller.all_open(accounts), timeout=15)
    await eventually(lambda: dead_letter_seen(amqp_url), timeout=15)

    async def settled() -> list[str]:
        """Gauges not yet at their value (empty once every one is)."""
        scraped = {name: await scrape(client) for name, client in clients.items()}
        return [
            f"{name}{dict(lbl)} on {svc} is {scraped[svc].get((name, lbl))}, want {want}"
            for svc, name, lbl, want in EXPECTED_GAUGES
            if scraped[svc].get((name, lbl)) != want
        ]

    pending = await settled()
    for _ in range(100):  # the gauges refresh every 0.1 s
        if not pending:
            break
        await asyncio.sleep(0.1)
        pending = await settled()
    assert pending == []

    after = {name: await scrape(client) for name, client in clients.items()}
    wrong = [
        f"{row.name}{dict(row.labels)} on {row.service} grew by "
        f"{after[row.service].get((row.name, row.labels), 0) - before[row.service].get((row.name, row.labels), 0)}, "
        f"want {row.delta}"
        for row in EXPECTED_DELTAS
        if after[row.service].get((row.name, row.labels), 0) - before[row.service].get((row.name, row.labels), 0)
        != row.delta
    ]
    assert wrong == []
    cases_route = (
        "brink_http_requests_total",
        labels(service="outreach", route="/v1/cases", method="GET", status="200"),
    )
    assert after["outreach"][cases_route] - before["outreach"].get(cases_route, 0) == poller.requests
    assert after["intake"][("brink_publish_confirm_duration_seconds_count", ())] > before["intake"].get(
        ("brink_publish_confirm_duration_seconds_count", ()), 0
    )

    async with brink.apps["outreach"].state.runtime.sessions() as session:
        open_cases = await session.scalar(select(func.count()).select_from(Case).where(Case.status == "open"))
        overdue = await session.scalar(
            select(func.count()).select_from(Task).where(Task.status == "open", Task.due_at < utcnow())
        )

    async def case_gauges_match() -> bool:
        figures = await scrape(brink.outreach)
        return (
            figures.get(("brink_cases", labels(status="open"))) == open_cases
            and figures.get(("brink_tasks_overdue", ())) == overdue
        )

    await eventually(case_gauges_match, timeout=5)


async def dead_letter_seen(amqp_url: str) -> bool:
    counts = await dlq.count_dead_letters(amqp_url, ["diagnosis.cancellations"])
    return counts["diagnosis.cancellations.dead"] == 1
