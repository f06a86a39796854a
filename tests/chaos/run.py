"""``make chaos``: the real services as processes, a stream of signed webhooks, and faults in the middle of it.

Usage: ``python -m tests.chaos.run [--scale short|full]``. Exits 1 when anything is lost, duplicated or stuck.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from shared.migrate import upgrade
from tests.chaos.checker import classify, wait_for_quiescence
from tests.chaos.infra import PrivatePostgres, PrivateRabbit, free_port
from tests.chaos.processes import ServiceProcess, fault_run_env
from tests.chaos.stripe_sender import Stream
from tests.helpers import stripe_event, stripe_subscription

FEEDBACK = (
    "too_expensive",
    "missing_features",
    "unused",
    "switched_service",
    "too_complex",
    "low_quality",
    "customer_service",
    None,
)


@dataclass(frozen=True)
class Scale:
    events: int
    rate: float
    rabbit_down_seconds: float
    rounds: int
    quiescence_timeout: float


SCALES = {
    "short": Scale(events=2400, rate=40, rabbit_down_seconds=5, rounds=1, quiescence_timeout=150),
    "full": Scale(events=6000, rate=40, rabbit_down_seconds=8, rounds=3, quiescence_timeout=300),
}


def say(message: str, started: float | None = None) -> None:
    stamp = f"+{time.monotonic() - started:6.1f}s " if started is not None else ""
    print(f"chaos: {stamp}{message}", flush=True)


class Cluster:
    """The private broker and database, and every service process, all cleaned up however the run ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.rabbit = PrivateRabbit()
        self.postgres = PrivatePostgres()
        self.secret = "whsec_chaos_" + uuid.uuid4().hex
        self.token = "chaos-token-" + uuid.uuid4().hex
        self.services: dict[str, ServiceProcess] = {}
        self._cleaned = False

    def start(self) -> None:
        self.rabbit.start()
        self.postgres.start()
        upgrade(self.postgres.url)
        env = fault_run_env(
            database_url=self.postgres.url,
            amqp_url=self.rabbit.url,
            api_token=self.token,
            webhook_secret=self.secret,
        )
        # Two instances of each consumer: two consumers per queue, two relays per outbox.
        for service, instances in (("intake", 1), ("diagnosis", 2), ("outreach", 2)):
            for instance in range(1, instances + 1):
                process = ServiceProcess(
                    service=service, instance=instance, port=free_port(), env=env, workdir=self.workdir
                )
                self.services[process.label] = process
        for process in self.services.values():
            process.start()

    def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        for process in self.services.values():
            with contextlib.suppress(Exception):  # keep cleaning up the rest
                process.stop()
        self.rabbit.cleanup()
        self.postgres.cleanup()


async def kill_and_restart(cluster: Cluster, label: str, started: float) -> None:
    process = cluster.services[label]
    pid = await asyncio.to_thread(process.kill)
    say(f"SIGKILL {label} (pid {pid}) mid-stream", started)
    await asyncio.sleep(2)
    await asyncio.to_thread(process.start)
    say(f"{label} restarted (pid {process.process.pid})", started)


async def stop_broker(cluster: Cluster, seconds: float, started: float) -> None:
    await asyncio.to_thread(cluster.rabbit.stop)
    say(f"RabbitMQ stopped for {seconds:.0f}s", started)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(cluster.rabbit.start)
    say("RabbitMQ started again (same data directory)", started)


async def restart_database(cluster: Cluster, started: float) -> None:
    say("PostgreSQL restart (pg_ctl restart -m fast)", started)
    await asyncio.to_thread(cluster.postgres.restart)
    say("PostgreSQL back", started)


async def inject_faults(cluster: Cluster, stream: Stream, scale: Scale, started: float) -> None:
    """Each round: kill a diagnosis worker, stop the broker, kill an outreach worker, restart the database."""
    faults = []
    for round_ in range(scale.rounds):
        instance = 1 + round_ % 2
        faults += [
            lambda i=instance: kill_and_restart(cluster, f"diagnosis-{i}", started),
            lambda: stop_broker(cluster, scale.rabbit_down_seconds, started),
            lambda i=instance: kill_and_restart(cluster, f"outreach-{i}", started),
            lambda: restart_database(cluster, started),
        ]
    for index, fault in enumerate(faults):
        # Spread over the planned stream; the stream goes on until the last fault is over, and a while after.
        threshold = int(scale.events * 0.8 * (index + 1) / (len(faults) + 1))
        while stream.finished < threshold:
            await asyncio.sleep(0.2)
        await fault()


def build_event(index: int) -> dict:
    """The index-th cancellation of the stream: a new subscription each time, so each should become one case."""
    return stripe_event(
        "customer.subscription.deleted",
        stripe_subscription(feedback=FEEDBACK[index % len(FEEDBACK)], quantity=1 + index % 7),
    )


def count_in_logs(cluster: Cluster, event_name: str) -> int:
    return sum(p.log_text().count(f'"event": "{event_name}"') for p in cluster.services.values())


def unexpected_errors(cluster: Cluster) -> Counter[str]:
    """What the services logged as ``http.unexpected_error`` (the cause of any 500), by error."""
    errors: Counter[str] = Counter()
    for process in cluster.services.values():
        for line in process.log_text().splitlines():
            if '"http.unexpected_error"' in line:
                try:
                    errors[str(json.loads(line).get("error", "?"))[:200]] += 1
                except ValueError:
                    errors[line[:200]] += 1
    return errors


async def run(scale: Scale, cluster: Cluster) -> int:
    started = time.monotonic()
    say(
        f"at least {scale.events} signed Stripe webhooks at {scale.rate:.0f}/s against intake-1; "
        f"{len(cluster.services)} service processes",
        started,
    )
    stream = Stream(
        url=f"{cluster.services['intake-1'].base_url}/webhooks/stripe",
        secret=cluster.secret,
        rate_per_second=scale.rate,
    )
    faults = asyncio.create_task(inject_faults(cluster, stream, scale, started))
    deliveries = await stream.run(build_event, at_least=scale.events, until=faults)
    await faults
    say(
        f"stream finished: {len(deliveries)} events, {sum(d.attempts for d in deliveries)} attempts, "
        f"{sum(d.extra_copies for d in deliveries)} deliberate duplicate deliveries",
        started,
    )
    state = await wait_for_quiescence(
        cluster.postgres.url, cluster.rabbit.queue_depths, timeout=scale.quiescence_timeout
    )
    say("quiescent" if state.in_flight == 0 else f"not quiescent after {scale.quiescence_timeout:.0f}s", started)
    verdict = classify(deliveries, state)
    retried = sum(1 for d in deliveries if d.attempts > 1)
    statuses = Counter(str(status) for d in deliveries for status in d.statuses)
    print(f"chaos: {retried} events needed more than one attempt; answers: {dict(sorted(statuses.items()))}")
    for error, times in unexpected_errors(cluster).most_common(5):
        print(f"chaos: 500 from intake {times}x: {error}")
    print(
        f"chaos: messages handled per consumer: {dict(state.handled)}; "
        f"redeliveries absorbed by the idempotency guard: {count_in_logs(cluster, 'consumer.message.duplicate')}"
    )
    print(
        f"chaos: outbox pending {state.pending_outbox}; main/retry queues "
        f"{ {k: v for k, v in state.queue_depths.items() if not k.endswith('.dead') and v} or 'empty' }; "
        f"dead or unrouted {verdict.dead or 'none'}"
    )
    for name, ids in (("lost", verdict.lost), ("duplicated", verdict.duplicated), ("recovered", verdict.recovered)):
        if ids:
            print(f"chaos: {name} e.g. {ids[:5]}")
    print(f"chaos: {verdict.summary()}")
    print(f"chaos: {'PASS' if verdict.ok else 'FAIL'} in {time.monotonic() - started:.0f}s")
    return 0 if verdict.ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("CHAOS_SCALE") or "full")
    parser.add_argument("--keep", action="store_true", help="keep the service logs directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="brink-chaos-run-"))
    cluster = Cluster(workdir)
    atexit.register(cluster.cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    code = 1
    try:
        say(f"scale {args.scale}: private RabbitMQ on {cluster.rabbit.port}, PostgreSQL on {cluster.postgres.port}")
        cluster.start()
        code = asyncio.run(run(SCALES[args.scale], cluster))
    finally:
        cluster.cleanup()
        if args.keep or code != 0:
            say(f"service logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
