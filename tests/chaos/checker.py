"""After the faults: wait for quiescence, then classify every event the way RabbitMQ's Jepsen checker does."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from tests.chaos.stripe_sender import Delivery

OUTBOX_TABLES = ("intake_outbox", "diagnosis_outbox", "outreach_outbox")


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def is_dead_queue(name: str) -> bool:
    return name.endswith(".dead") or name == "brink.unrouted"


@dataclass
class Snapshot:
    """What the database and the broker hold at one moment."""

    pending_outbox: dict[str, int]
    queue_depths: dict[str, int]
    cases: Counter[str]
    diagnoses: Counter[str]
    first_diagnoses: Counter[str]
    repeated_tasks: int
    accepted_webhooks: int
    handled: Counter[str]

    @property
    def in_flight(self) -> int:
        """Outbox rows not yet published plus messages waiting in main and retry queues."""
        queued = sum(depth for name, depth in self.queue_depths.items() if not is_dead_queue(name))
        return sum(self.pending_outbox.values()) + queued


async def snapshot(database_url: str, queue_depths: dict[str, int]) -> Snapshot:
    connection = await asyncpg.connect(plain_dsn(database_url), timeout=10)
    try:
        pending = {
            table: await connection.fetchval(f"SELECT count(*) FROM {table} WHERE published_at IS NULL")
            for table in OUTBOX_TABLES
        }
        cases = Counter(
            {
                row[0]: row[1]
                for row in await connection.fetch(
                    "SELECT cancellation_id, count(*) FROM outreach_cases GROUP BY cancellation_id"
                )
            }
        )
        diagnoses = Counter(
            {
                row[0]: row[1]
                for row in await connection.fetch(
                    "SELECT cancellation_id, count(*) FROM diagnosis_diagnoses GROUP BY cancellation_id"
                )
            }
        )
        first = Counter(
            {
                row[0]: row[1]
                for row in await connection.fetch(
                    "SELECT cancellation_id, count(*) FROM diagnosis_diagnoses WHERE version = 1 GROUP BY cancellation_id"
                )
            }
        )
        repeated_tasks = await connection.fetchval(
            "SELECT count(*) FROM (SELECT case_id, position FROM outreach_tasks "
            "GROUP BY case_id, position HAVING count(*) > 1) AS repeated"
        )
        accepted = await connection.fetchval("SELECT count(*) FROM intake_webhook_events WHERE outcome = 'accepted'")
        handled = Counter()
        for table in ("diagnosis_handled_messages", "outreach_handled_messages"):
            for row in await connection.fetch(f"SELECT consumer, count(*) FROM {table} GROUP BY consumer"):
                handled[row[0]] = row[1]
    finally:
        await connection.close()
    return Snapshot(pending, queue_depths, cases, diagnoses, first, repeated_tasks, accepted, handled)


async def wait_for_quiescence(
    database_url: str, read_queues: Callable[[], dict[str, int]], *, timeout: float, settle_polls: int = 3
) -> Snapshot:
    """Poll until nothing is in flight and the case count has not moved for ``settle_polls`` polls."""
    deadline = time.monotonic() + timeout
    steady = 0
    last_cases = -1
    while True:
        current = await snapshot(database_url, await asyncio.to_thread(read_queues))
        total_cases = sum(current.cases.values())
        steady = steady + 1 if current.in_flight == 0 and total_cases == last_cases else 0
        last_cases = total_cases
        if steady >= settle_polls or time.monotonic() > deadline:
            return current
        await asyncio.sleep(1.0)


@dataclass
class Verdict:
    sent: int
    accepted: int
    cases: int
    lost: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unacknowledged: list[str] = field(default_factory=list)
    stuck: int = 0
    dead: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.lost and not self.duplicated and self.stuck == 0

    def summary(self) -> str:
        return (
            f"sent {self.sent}  accepted {self.accepted}  cases {self.cases}  lost {len(self.lost)}  "
            f"recovered {len(self.recovered)}  duplicated {len(self.duplicated)}  stuck {self.stuck}  "
            f"unacknowledged {len(self.unacknowledged)}"
        )


def classify(deliveries: list[Delivery], state: Snapshot) -> Verdict:
    """lost: answered 2xx, no case. recovered: never 2xx, yet a case. duplicated: a second case or
    diagnosis for one cancellation, or a playbook step applied twice. stuck: unpublished or queued."""
    verdict = Verdict(
        sent=len(deliveries), accepted=sum(d.accepted for d in deliveries), cases=sum(state.cases.values())
    )
    for delivery in deliveries:
        has_case = state.cases[delivery.cancellation_id] > 0
        if delivery.accepted and not has_case:
            verdict.lost.append(delivery.event_id)
        elif not delivery.accepted and has_case:
            verdict.recovered.append(delivery.event_id)
        elif not delivery.accepted:
            verdict.unacknowledged.append(delivery.event_id)
        if (
            state.cases[delivery.cancellation_id] > 1
            or state.diagnoses[delivery.cancellation_id] > 1
            or state.first_diagnoses[delivery.cancellation_id] > 1
        ):
            verdict.duplicated.append(delivery.event_id)
    verdict.duplicated.extend(["task"] * state.repeated_tasks)
    verdict.stuck = state.in_flight
    verdict.dead = {name: depth for name, depth in state.queue_depths.items() if is_dead_queue(name) and depth}
    return verdict
