"""Prometheus metrics shared by every service, and the ``/metrics`` endpoint."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import APIRouter, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from shared.messaging import Broker

HTTP_REQUESTS = Counter("brink_http_requests_total", "HTTP requests handled", ["service", "route", "method", "status"])
HTTP_LATENCY = Histogram(
    "brink_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["service", "route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
OUTBOX_PUBLISHED = Counter("brink_outbox_published_total", "Outbox rows published and confirmed", ["table"])
# Gauges read from the database or the broker: with several processes, the latest reading is the answer.
OUTBOX_BACKLOG = Gauge(
    "brink_outbox_backlog", "Outbox rows not yet published", ["table"], multiprocess_mode="mostrecent"
)
OUTBOX_OLDEST_AGE = Gauge(
    "brink_outbox_oldest_age_seconds",
    "Age of the oldest unpublished outbox row",
    ["table"],
    multiprocess_mode="mostrecent",
)
PUBLISH_CONFIRM_SECONDS = Histogram(
    "brink_publish_confirm_duration_seconds",
    "Time from publishing a batch to the broker's confirms",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)
DELIVERIES_PER_COMMIT = Histogram(
    "brink_intake_deliveries_per_commit",
    "Webhook deliveries recorded by one statement and commit (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
MESSAGES_CONSUMED = Counter(
    "brink_messages_consumed_total", "Messages taken from a queue, by outcome", ["queue", "outcome"]
)
HANDLER_SECONDS = Histogram(
    "brink_message_handler_duration_seconds",
    "Time to handle one message and commit",
    ["queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
MESSAGES_PER_COMMIT = Histogram(
    "brink_consumer_messages_per_commit",
    "Messages handled in one consumer transaction (a batch: one handled-rows insert, one commit)",
    ["queue"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
REDELIVERIES = Counter("brink_message_redeliveries_total", "Messages the broker delivered again", ["queue"])
DEAD_LETTERED = Counter("brink_messages_dead_lettered_total", "Messages sent to a dead-letter queue", ["queue"])

router = APIRouter()


MULTIPROCESS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"
# The files prometheus_client writes there (counter_<pid>.db, gauge_<mode>_<pid>.db, ...), and only those: a
# directory pointed at by mistake (the working directory, with brink.db in it) loses nothing else.
METRICS_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint() -> Response:
    if os.environ.get(MULTIPROCESS_DIRECTORY):
        # One of several processes serving a port: answer for all of them.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def prepare_multiprocess_directory() -> Path:
    """An empty directory for the metrics of the processes about to start, named in the environment they inherit.

    An operator's own ``PROMETHEUS_MULTIPROC_DIR`` loses the metrics files of an earlier run (they would count
    twice) and nothing else; otherwise a new temporary one is made.
    """
    named = os.environ.get(MULTIPROCESS_DIRECTORY)
    if named:
        directory = Path(named)
        if directory.exists():
            for stale in directory.glob("*.db"):
                if METRICS_FILE.fullmatch(stale.name):
                    stale.unlink()
        directory.mkdir(parents=True, exist_ok=True)
    else:
        directory = Path(tempfile.mkdtemp(prefix="brink-metrics-"))
        os.environ[MULTIPROCESS_DIRECTORY] = str(directory)
        atexit.register(shutil.rmtree, directory, True)
    return directory


class HTTPMetricsMiddleware:
    """Counts requests by route template (not raw path, which would explode the label set)."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            HTTP_REQUESTS.labels(self.service, template, method, str(status)).inc()
            HTTP_LATENCY.labels(self.service, template, method).observe(time.perf_counter() - started)


# Defined here once so every service and the dashboards agree on names; each service updates its own.
WEBHOOKS = Counter(
    "brink_webhooks_total", "Webhook deliveries by source, event type and outcome", ["source", "event_type", "outcome"]
)
QUEUE_MESSAGES = Gauge(
    "brink_queue_messages", "Messages ready in a RabbitMQ queue", ["queue"], multiprocess_mode="mostrecent"
)
QUEUE_CONSUMERS = Gauge(
    "brink_queue_consumers", "Consumers attached to a RabbitMQ queue", ["queue"], multiprocess_mode="mostrecent"
)
CASES = Gauge("brink_cases", "Cases by status", ["status"], multiprocess_mode="mostrecent")
TASKS_OVERDUE = Gauge("brink_tasks_overdue", "Open tasks past their due time", multiprocess_mode="mostrecent")
ESCALATIONS_FIRED = Counter("brink_escalations_fired_total", "Escalation steps fired", ["rung"])
NOTIFICATIONS_FAILED = Counter(
    "brink_notifications_failed_total", "Notifications that failed after every retry", ["channel"]
)
RETENTION_PURGED = Counter(
    "brink_retention_purged_rows_total", "Rows deleted by retention (older than BRINK_RETENTION_DAYS)", ["table"]
)
RETENTION_LAST_RUN = Gauge(
    "brink_retention_last_run_timestamp_seconds",
    "When a service's retention purge last finished (Unix time)",
    ["service"],
    multiprocess_mode="max",
)
TABLE_BYTES = Gauge(
    "brink_table_bytes",
    "Size on disk of a table kept small by retention, with its indexes (PostgreSQL)",
    ["table"],
    multiprocess_mode="mostrecent",
)
TABLE_ROWS = Gauge(
    "brink_table_rows",
    "Rows in a table kept small by retention (PostgreSQL's estimate)",
    ["table"],
    multiprocess_mode="mostrecent",
)
NOTIFICATIONS_SENT = Counter("brink_notifications_sent_total", "Notifications delivered", ["channel"])


async def refresh_queue_metrics(broker: Broker, queues: list[str]) -> None:
    """Read each queue's ready messages and consumers from RabbitMQ into QUEUE_MESSAGES/QUEUE_CONSUMERS."""
    depths = await broker.queue_depths(queues)
    for queue, (messages, consumers) in depths.items():
        QUEUE_MESSAGES.labels(queue).set(messages)
        QUEUE_CONSUMERS.labels(queue).set(consumers)


def record_outbox_backlog(table: str, *, count: int, oldest_age_seconds: float) -> None:
    """Publish an outbox's backlog figures."""
    OUTBOX_BACKLOG.labels(table).set(count)
    OUTBOX_OLDEST_AGE.labels(table).set(oldest_age_seconds)


RECONCILE_RECOVERED = Counter(
    "brink_reconcile_recovered_total",
    "Events only the reconciler found (their webhook never arrived), by source and event type",
    ["source", "event_type"],
)
RECONCILE_EVENTS = Counter(
    "brink_reconcile_events_total", "Events the reconciler read, by source and outcome", ["source", "outcome"]
)
RECONCILE_FAILURES = Counter(
    "brink_reconcile_failures_total",
    "Reconciler runs that failed, by source and reason (key_refused, unavailable, error)",
    ["source", "reason"],
)
RECONCILE_LAG = Gauge(
    "brink_reconcile_lag_seconds",
    "Now minus the reconciler's cursor: events newer than the cursor have not been checked yet",
    ["source"],
    multiprocess_mode="mostrecent",
)
RECONCILE_LAST_SUCCESS = Gauge(
    "brink_reconcile_last_success_timestamp_seconds",
    "When the reconciler last read a source to the end (the process start while it never has)",
    ["source"],
    multiprocess_mode="mostrecent",
)
