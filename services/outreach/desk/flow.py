"""The flow page's numbers: queue depths (with retry and dead queues), dead letters and outbox backlogs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.db import utcnow
from shared.logs import get_logger
from shared.messaging import UNROUTED_QUEUE, QueueSpec
from shared.runtime import Runtime

log = get_logger("outreach.desk.flow")


@dataclass(frozen=True)
class QueueDepth:
    """A consumer queue with its delayed-retry queues and its dead queue (None: not declared yet)."""

    name: str
    ready: int | None
    consumers: int | None
    retrying: int | None
    dead: int | None

    @property
    def declared(self) -> bool:
        return self.ready is not None

    @property
    def problem(self) -> str | None:
        """What deserves a look: dead letters, or nobody consuming."""
        if not self.declared:
            return "not declared yet (its service has not started)"
        if self.dead:
            return f"{self.dead} dead letter{'s' if self.dead != 1 else ''}"
        if self.consumers == 0:
            return "no consumer"
        return None


@dataclass(frozen=True)
class Backlog:
    service: str
    count: int | None
    oldest_age_seconds: float | None
    problem: str | None = None


@dataclass
class Flow:
    queues: list[QueueDepth] = field(default_factory=list)
    unrouted: int | None = None
    backlogs: list[Backlog] = field(default_factory=list)
    broker_problem: str | None = None
    at: datetime = field(default_factory=utcnow)

    @property
    def dead_letters(self) -> int:
        return sum(queue.dead or 0 for queue in self.queues)


def queue_names(queue: str, retry_delays: list[float]) -> tuple[list[str], str]:
    """The retry queues and the dead queue the topology declares for a consumer queue."""
    spec = QueueSpec(name=queue, routing_keys=(), retry_delays=tuple(retry_delays))
    return [spec.retry_queue(attempt) for attempt in range(len(retry_delays))], spec.dead_queue


async def _depths(runtime: Runtime, names: list[str]) -> dict[str, tuple[int, int] | None]:
    """Depths of all queues; one missing queue (not declared yet) only blanks its own row."""
    try:
        return dict(await runtime.broker.queue_depths(names))
    except Exception:  # a missing queue closes the channel: ask one by one
        depths: dict[str, tuple[int, int] | None] = {}
        for name in names:
            try:
                depths.update(await runtime.broker.queue_depths([name]))
            except Exception:  # shown as "not declared"
                depths[name] = None
        return depths


async def _remote_backlog(client: httpx.AsyncClient, service: str, base_url: str) -> Backlog:
    """Another service's outbox from its own ``/metrics`` (its runtime keeps those gauges fresh)."""
    try:
        text = (await client.get(f"{base_url}/metrics")).raise_for_status().text
    except httpx.HTTPError as error:
        return Backlog(
            service=service, count=None, oldest_age_seconds=None, problem=f"unreachable ({error.__class__.__name__})"
        )
    values: dict[str, float] = {}
    table = f"{service}_outbox"  # shared.outbox names each service's table so
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name in ("brink_outbox_backlog", "brink_outbox_oldest_age_seconds")
                and sample.labels.get("table") == table
            ):
                values[sample.name] = sample.value
    if "brink_outbox_backlog" not in values:
        return Backlog(service=service, count=None, oldest_age_seconds=None, problem="reports no outbox")
    return Backlog(
        service=service,
        count=int(values["brink_outbox_backlog"]),
        oldest_age_seconds=values.get("brink_outbox_oldest_age_seconds"),
    )


async def read_flow(
    runtime: Runtime, *, queues: list[str], services: dict[str, str], client: httpx.AsyncClient
) -> Flow:
    """The whole picture, each part failing on its own rather than blanking the page."""
    flow = Flow()
    if runtime.broker.is_connected:
        groups = {queue: queue_names(queue, runtime.settings.retry_delays) for queue in queues}
        every = [UNROUTED_QUEUE] + [
            name for queue, (retries, dead) in groups.items() for name in (queue, *retries, dead)
        ]
        depths = await _depths(runtime, every)

        def ready(name: str) -> int | None:
            depth = depths.get(name)
            return depth[0] if depth else None

        def consumers(name: str) -> int | None:
            depth = depths.get(name)
            return depth[1] if depth else None

        for queue, (retries, dead) in groups.items():
            retrying = [count for count in (ready(name) for name in retries) if count is not None]
            flow.queues.append(
                QueueDepth(
                    name=queue,
                    ready=ready(queue),
                    consumers=consumers(queue),
                    retrying=sum(retrying) if len(retrying) == len(retries) else None,
                    dead=ready(dead),
                )
            )
        flow.unrouted = ready(UNROUTED_QUEUE)
    else:
        flow.broker_problem = f"not connected to RabbitMQ at {runtime.broker.where}"
    count, age = await runtime.measure_outbox()
    flow.backlogs.append(Backlog(service=runtime.service, count=count, oldest_age_seconds=age or None))
    flow.backlogs.extend(
        await asyncio.gather(
            *(_remote_backlog(client, service, url) for service, url in services.items() if service != runtime.service)
        )
    )
    return flow
