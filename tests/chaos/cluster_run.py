"""``make cluster-chaos``: Brink on a private three-node RabbitMQ cluster, two instances of every service, a stream
of signed Stripe cancellations, and the faults a cluster brings: the node holding the most queue leaders
SIGKILLed, a rolling restart, one node cut off from the others for 20 s, service instances SIGKILLed.

Usage: ``python -m tests.chaos.cluster_run [--scale short|full]``. Prints the Jepsen outcome table and how long
each fault took to recover; exits 1 unless lost, duplicated and stuck are all 0.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from shared.migrate import upgrade
from tests.chaos.checker import Verdict, classify, plain_dsn, wait_for_quiescence
from tests.chaos.cluster import Node, RabbitCluster
from tests.chaos.infra import PrivatePostgres, free_port
from tests.chaos.processes import ServiceProcess
from tests.chaos.run import build_event, count_in_logs, unexpected_errors
from tests.chaos.stripe_sender import Delivery, Stream

SERVICES = ("intake", "diagnosis", "outreach")
# Events first sent in this window after a fault began are the ones whose cases say how long it took to recover.
RECOVERY_WINDOW_SECONDS = 2.0


@dataclass(frozen=True)
class Scale:
    events: int
    rate: float
    partition_seconds: float
    quiescence_timeout: float


SCALES = {
    "short": Scale(events=1200, rate=25, partition_seconds=20, quiescence_timeout=240),
    "full": Scale(events=6000, rate=30, partition_seconds=20, quiescence_timeout=420),
}


@dataclass
class Fault:
    """One fault as it happened: when it began (wall clock) and when the broker was whole again."""

    name: str
    began_at: float
    broker_whole_after: float
    detail: str = ""
    slowest_case_after: float | None = None


def say(message: str, started: float | None = None) -> None:
    stamp = f"+{time.monotonic() - started:6.1f}s " if started is not None else ""
    print(f"cluster-chaos: {stamp}{message}", flush=True)


class Deployment:
    """The private cluster and database, and two instances of every service; cleaned up however the run ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.rabbit = RabbitCluster()
        self.postgres = PrivatePostgres()
        self.secret = "whsec_chaos_" + uuid.uuid4().hex
        self.token = "chaos-token-" + uuid.uuid4().hex
        self.services: dict[str, ServiceProcess] = {}
        self._cleaned = False

    def start(self) -> None:
        self.rabbit.start()
        self.postgres.start()
        upgrade(self.postgres.url)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("BRINK_")},
            "BRINK_DATABASE_URL": self.postgres.url,
            "BRINK_AMQP_URL": self.rabbit.url,
            "BRINK_API_TOKENS": self.token,
            "BRINK_STRIPE_WEBHOOK_SECRETS": self.secret,
            "BRINK_RETRY_DELAYS_SECONDS": "0.5,1,2",
            "BRINK_OUTBOX_POLL_SECONDS": "0.2",
            "BRINK_HOST": "127.0.0.1",
            "BRINK_LOG_LEVEL": "INFO",
            "BRINK_LOG_FORMAT": "json",
        }
        for service in SERVICES:
            for instance in (1, 2):
                process = ServiceProcess(
                    service=service, instance=instance, port=free_port(), env=env, workdir=self.workdir
                )
                self.services[process.label] = process
        for process in self.services.values():
            process.start()

    def webhook_urls(self) -> list[str]:
        return [f"{p.base_url}/webhooks/stripe" for p in self.services.values() if p.service == "intake"]

    def cleanup(self) -> None:
        if self._cleaned:
            return
        self._cleaned = True
        for process in self.services.values():
            with contextlib.suppress(Exception):  # keep cleaning up the rest
                process.stop()
        self.rabbit.cleanup()
        self.postgres.cleanup()


def leaders_line(rabbit: RabbitCluster) -> str:
    counts = rabbit.leaders()
    return ", ".join(f"{node.name.split('@')[0][-1]}: {counts.get(node.name, 0)}" for node in rabbit.nodes)


def busiest_node(rabbit: RabbitCluster) -> Node:
    """The node holding the most queue leaders."""
    counts = rabbit.leaders()
    return max(rabbit.nodes, key=lambda node: counts.get(node.name, 0))


async def kill_leader_node(deployment: Deployment, started: float) -> Fault:
    rabbit = deployment.rabbit
    node = await asyncio.to_thread(busiest_node, rabbit)
    leaders = (await asyncio.to_thread(rabbit.leaders)).get(node.name, 0)
    began, clock = time.time(), time.monotonic()
    pid = await asyncio.to_thread(rabbit.kill_node, node)
    say(f"SIGKILL {node.name} (pid {pid}), leader of {leaders} queues", started)
    await asyncio.sleep(5)
    await asyncio.to_thread(rabbit.start_node, node)
    await asyncio.to_thread(rabbit.wait_until_whole, timeout=180)
    fault = Fault("SIGKILL of the node holding the most leaders", began, time.monotonic() - clock)
    fault.detail = f"{leaders} leaders there; restarted after 5 s"
    say(f"{node.name} back; cluster whole {fault.broker_whole_after:.1f}s after the kill", started)
    return fault


async def rolling_restart(deployment: Deployment, started: float) -> Fault:
    rabbit = deployment.rabbit
    began, clock = time.time(), time.monotonic()
    for node in rabbit.nodes:
        deadline = time.monotonic() + 120
        while await asyncio.to_thread(rabbit.quorum_critical, node):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{node.name} stayed quorum-critical for 120 s")
            await asyncio.sleep(1)
        await asyncio.to_thread(rabbit.stop_node, node)
        say(f"rolling restart: {node.name} stopped", started)
        await asyncio.to_thread(rabbit.start_node, node)
        await asyncio.to_thread(rabbit.wait_until_whole, timeout=180)
        say(f"rolling restart: {node.name} back", started)
    before = await asyncio.to_thread(leaders_line, rabbit)
    await asyncio.to_thread(rabbit.rebalance)
    after = await asyncio.to_thread(leaders_line, rabbit)
    say(f"leaders per node after the restarts {before}; rebalanced {after}", started)
    fault = Fault("rolling restart, one node at a time", began, time.monotonic() - clock)
    fault.detail = f"leaders {before} after, {after} once rebalanced"
    return fault


async def partition_node(deployment: Deployment, seconds: float, started: float) -> Fault:
    rabbit = deployment.rabbit
    node = await asyncio.to_thread(busiest_node, rabbit)
    leaders = (await asyncio.to_thread(rabbit.leaders)).get(node.name, 0)
    began, clock = time.time(), time.monotonic()
    await asyncio.to_thread(rabbit.cut_off, node)
    say(f"{node.name} (leader of {leaders} queues) cut off from the other nodes for {seconds:.0f}s", started)
    await asyncio.sleep(seconds)
    await asyncio.to_thread(rabbit.heal)
    say("healed", started)
    await asyncio.to_thread(rabbit.wait_until_whole, timeout=180)
    fault = Fault(f"{seconds:.0f} s partition of one node from the other two", began, time.monotonic() - clock)
    # Leaders do not move back on their own: what the node leads after the heal is what it kept through the cut.
    kept = (await asyncio.to_thread(rabbit.leaders)).get(node.name, 0)
    fault.detail = f"it led {leaders} queues before the cut and {kept} after it (new leaders, elected by the majority)"
    say(f"cluster whole {fault.broker_whole_after:.1f}s after the cut began", started)
    return fault


async def kill_instances(deployment: Deployment, labels: tuple[str, ...], started: float) -> Fault:
    began, clock = time.time(), time.monotonic()
    for label in labels:
        pid = await asyncio.to_thread(deployment.services[label].kill)
        say(f"SIGKILL {label} (pid {pid})", started)
    await asyncio.sleep(2)
    for label in labels:
        await asyncio.to_thread(deployment.services[label].start)
    say(f"{', '.join(labels)} restarted", started)
    return Fault(f"SIGKILL of {', '.join(labels)}", began, time.monotonic() - clock, "restarted after 2 s")


async def inject_faults(deployment: Deployment, stream: Stream, scale: Scale, started: float) -> list[Fault]:
    plan: list[Callable[[], Awaitable[Fault]]] = [
        lambda: kill_leader_node(deployment, started),
        lambda: kill_instances(deployment, ("intake-1", "diagnosis-1", "outreach-2"), started),
        lambda: rolling_restart(deployment, started),
        lambda: partition_node(deployment, scale.partition_seconds, started),
        lambda: kill_instances(deployment, ("intake-2", "diagnosis-2", "outreach-1"), started),
    ]
    faults = []
    for index, fault in enumerate(plan):
        threshold = int(scale.events * 0.8 * (index + 1) / (len(plan) + 1))
        while stream.finished < threshold:
            await asyncio.sleep(0.2)
        faults.append(await fault())
    return faults


async def case_opening_times(database_url: str) -> dict[str, float]:
    """When each cancellation's case was opened (wall clock, seconds)."""
    connection = await asyncpg.connect(plain_dsn(database_url), timeout=10)
    try:
        rows = await connection.fetch("SELECT cancellation_id, opened_at FROM outreach_cases")
    finally:
        await connection.close()
    opened: dict[str, float] = {}
    for row in rows:
        value: datetime = row["opened_at"]
        opened[row["cancellation_id"]] = (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return opened


def measure_recovery(faults: list[Fault], deliveries: list[Delivery], opened: dict[str, float]) -> float:
    """Each fault's slowest case among events first sent in its first seconds; returns the median latency."""
    latencies = [
        opened[d.cancellation_id] - d.first_sent_at
        for d in deliveries
        if d.first_sent_at is not None and d.cancellation_id in opened
    ]
    for fault in faults:
        window = [
            opened[d.cancellation_id] - fault.began_at
            for d in deliveries
            if d.first_sent_at is not None
            and fault.began_at <= d.first_sent_at < fault.began_at + RECOVERY_WINDOW_SECONDS
            and d.cancellation_id in opened
        ]
        fault.slowest_case_after = max(window) if window else None
    return statistics.median(latencies) if latencies else float("nan")


def report(verdict: Verdict, faults: list[Fault], median_latency: float) -> None:
    print("\n| sent | accepted | lost | duplicated | stuck | recovered | unacknowledged |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {verdict.sent} | {verdict.accepted} | {len(verdict.lost)} | {len(verdict.duplicated)} | {verdict.stuck} "
        f"| {len(verdict.recovered)} | {len(verdict.unacknowledged)} |"
    )
    print(
        f"\n| fault | broker whole again after | slowest case of the events sent in its first "
        f"{RECOVERY_WINDOW_SECONDS:.0f} s | |"
    )
    print("|---|---:|---:|---|")
    for fault in faults:
        slowest = f"{fault.slowest_case_after:.1f} s" if fault.slowest_case_after is not None else "n/a"
        print(f"| {fault.name} | {fault.broker_whole_after:.1f} s | {slowest} | {fault.detail} |")
    print(f"\n(median time from first send to case open over the whole run: {median_latency:.2f} s)\n")


async def run(scale: Scale, deployment: Deployment) -> int:
    started = time.monotonic()
    urls = deployment.webhook_urls()
    say(
        f"at least {scale.events} signed Stripe webhooks at {scale.rate:.0f}/s over {len(urls)} intake instances; "
        f"{len(deployment.services)} service processes; queue leaders per node {leaders_line(deployment.rabbit)}",
        started,
    )
    stream = Stream(url=urls, secret=deployment.secret, rate_per_second=scale.rate)
    faults_task = asyncio.create_task(inject_faults(deployment, stream, scale, started))
    deliveries = await stream.run(build_event, at_least=scale.events, until=faults_task)
    faults = await faults_task
    say(
        f"stream finished: {len(deliveries)} events, {sum(d.attempts for d in deliveries)} attempts, "
        f"{sum(d.extra_copies for d in deliveries)} deliberate duplicate deliveries",
        started,
    )
    state = await wait_for_quiescence(
        deployment.postgres.url, deployment.rabbit.queue_depths, timeout=scale.quiescence_timeout
    )
    say("quiescent" if state.in_flight == 0 else f"not quiescent after {scale.quiescence_timeout:.0f}s", started)
    verdict = classify(deliveries, state)
    median_latency = measure_recovery(faults, deliveries, await case_opening_times(deployment.postgres.url))
    statuses = Counter(str(status) for d in deliveries for status in d.statuses)
    print(f"cluster-chaos: answers to webhook attempts: {dict(sorted(statuses.items()))}")
    for error, times in unexpected_errors(deployment).most_common(5):
        print(f"cluster-chaos: 500 from intake {times}x: {error}")
    print(
        f"cluster-chaos: messages handled per consumer: {dict(state.handled)}; redeliveries absorbed by the "
        f"idempotency guard: {count_in_logs(deployment, 'consumer.message.duplicate')}; failovers to another node: "
        f"{count_in_logs(deployment, 'broker.node.connected')}"
    )
    print(
        f"cluster-chaos: outbox pending {state.pending_outbox}; main/retry queues "
        f"{ {k: v for k, v in state.queue_depths.items() if not k.endswith('.dead') and v} or 'empty' }; "
        f"dead or unrouted {verdict.dead or 'none'}; leaders per node {leaders_line(deployment.rabbit)}"
    )
    for name, ids in (("lost", verdict.lost), ("duplicated", verdict.duplicated), ("recovered", verdict.recovered)):
        if ids:
            print(f"cluster-chaos: {name} e.g. {ids[:5]}")
    report(verdict, faults, median_latency)
    print(f"cluster-chaos: {verdict.summary()}")
    print(f"cluster-chaos: {'PASS' if verdict.ok else 'FAIL'} in {time.monotonic() - started:.0f}s")
    return 0 if verdict.ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("CHAOS_SCALE") or "full")
    parser.add_argument("--keep", action="store_true", help="keep the service logs directory")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="brink-cluster-chaos-"))
    deployment = Deployment(workdir)
    atexit.register(deployment.cleanup)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    code = 1
    try:
        say(
            f"scale {args.scale}: private RabbitMQ cluster {deployment.rabbit.url.split('@')[1]}, "
            f"PostgreSQL on {deployment.postgres.port}"
        )
        deployment.start()
        code = asyncio.run(run(SCALES[args.scale], deployment))
    finally:
        deployment.cleanup()
        if args.keep or code != 0:
            say(f"service logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
