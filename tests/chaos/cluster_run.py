"""``make cluster-chaos``: Brink on a private three-node RabbitMQ cluster, two instances of every service, a stream
of signed Stripe cancellations, and the faults a cluster brings: the node holding the most queue leaders
SIGKILLed, a rolling restart, one node cut off from the others for 20 s, service instances SIGKILLed.

Usage: ``python -m tests.chaos.cluster_run [--scale ci|short|full]``. Prints the Jepsen outcome table, how long
each fault took to recover and where the run's time went; exits 1 unless lost, duplicated and stuck are all 0.
The scales differ in how many events are sent and how fast, never in the faults: ``ci`` (in ``.ci/run``) sends a
lighter stream (the same two cores boot the nodes and carry the traffic) and starts the faults sooner.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from tests.chaos.checker import Verdict, classify, plain_dsn, wait_for_quiescence
from tests.chaos.cluster import Node, RabbitCluster
from tests.chaos.cluster_deployment import Deployment
from tests.chaos.processes import start_all
from tests.chaos.run import build_event, count_in_logs, unexpected_errors
from tests.chaos.stripe_sender import Delivery, Stream

# Events first sent in this window after a fault began are the ones whose cases say how long it took to recover.
RECOVERY_WINDOW_SECONDS = 2.0


@dataclass(frozen=True)
class Scale:
    events: int  # at least; the stream goes on at its rate until the last fault is over
    rate: float
    partition_seconds: float
    quiescence_timeout: float
    # The faults begin over this share of the planned stream, each once its share of events is answered; a fault
    # outlasts its share on two cores, so from the second on they follow one another.
    fault_spread: float = 0.8


SCALES = {
    "ci": Scale(events=1500, rate=12, partition_seconds=20, quiescence_timeout=180, fault_spread=0.3),
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


def leaders_line(rabbit: RabbitCluster) -> str:
    counts = rabbit.leaders()
    return ", ".join(f"{node.name.split('@')[0][-1]}: {counts.get(node.name, 0)}" for node in rabbit.nodes)


async def busiest_node(rabbit: RabbitCluster) -> tuple[Node, int]:
    """The node holding the most queue leaders, and how many it holds."""
    counts = await asyncio.to_thread(rabbit.leaders)
    node = max(rabbit.nodes, key=lambda node: counts.get(node.name, 0))
    return node, counts.get(node.name, 0)


async def boot(rabbit: RabbitCluster, node: Node) -> str:
    """Start ``node`` again and wait until the cluster is whole; says how long each took."""
    clock = time.monotonic()
    await asyncio.to_thread(rabbit.start_node, node)
    booted = time.monotonic() - clock
    whole = await asyncio.to_thread(rabbit.wait_until_whole, timeout=180)
    return f"boot {booted:.1f}s, whole {whole:.1f}s later"


async def kill_leader_node(deployment: Deployment, started: float) -> Fault:
    rabbit = deployment.rabbit
    node, leaders = await busiest_node(rabbit)
    began, clock = time.time(), time.monotonic()
    pid = await asyncio.to_thread(rabbit.kill_node, node)
    say(f"SIGKILL {node.name} (pid {pid}), leader of {leaders} queues", started)
    await asyncio.sleep(5)
    steps = await boot(rabbit, node)
    fault = Fault("SIGKILL of the node holding the most leaders", began, time.monotonic() - clock)
    fault.detail = f"{leaders} leaders there; restarted after 5 s"
    say(f"{node.name} back ({steps}); cluster whole {fault.broker_whole_after:.1f}s after the kill", started)
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
        stopping = time.monotonic()
        await asyncio.to_thread(rabbit.stop_node, node)
        say(f"rolling restart: {node.name} stopped ({time.monotonic() - stopping:.1f}s)", started)
        steps = await boot(rabbit, node)
        say(f"rolling restart: {node.name} back ({steps})", started)
    before = await asyncio.to_thread(leaders_line, rabbit)
    await asyncio.to_thread(rabbit.rebalance)
    after = await asyncio.to_thread(leaders_line, rabbit)
    say(f"leaders per node after the restarts {before}; rebalanced {after}", started)
    fault = Fault("rolling restart, one node at a time", began, time.monotonic() - clock)
    fault.detail = f"leaders {before} after, {after} once rebalanced"
    return fault


async def partition_node(deployment: Deployment, seconds: float, started: float) -> Fault:
    rabbit = deployment.rabbit
    node, leaders = await busiest_node(rabbit)
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
    await asyncio.to_thread(start_all, [deployment.services[label] for label in labels])
    say(f"{', '.join(labels)} restarted, answering /healthz", started)
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
        threshold = int(scale.events * scale.fault_spread * (index + 1) / (len(plan) + 1))
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
    started, started_at = time.monotonic(), time.time()
    urls = deployment.webhook_urls()
    say(
        f"at least {scale.events} signed Stripe webhooks at {scale.rate:.0f}/s over {len(urls)} intake instances; "
        f"{len(deployment.services)} service processes; queue leaders per node {leaders_line(deployment.rabbit)}",
        started,
    )
    stream = Stream(url=urls, secret=deployment.secret, rate_per_second=scale.rate)
    faults_over = 0.0

    async def faults_then_mark() -> list[Fault]:
        nonlocal faults_over
        faults = await inject_faults(deployment, stream, scale, started)
        faults_over = time.monotonic() - started
        return faults

    faults_task = asyncio.create_task(faults_then_mark())
    deliveries = await stream.run(build_event, at_least=scale.events, until=faults_task)
    faults = await faults_task
    stream_over = time.monotonic() - started
    say(
        f"stream finished: {len(deliveries)} events, {sum(d.attempts for d in deliveries)} attempts, "
        f"{sum(d.extra_copies for d in deliveries)} deliberate duplicate deliveries",
        started,
    )
    state = await wait_for_quiescence(
        deployment.postgres.url, deployment.rabbit.queue_depths, timeout=scale.quiescence_timeout
    )
    say("quiescent" if state.in_flight == 0 else f"not quiescent after {scale.quiescence_timeout:.0f}s", started)
    quiet = time.monotonic() - started
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
    first_fault = (faults[0].began_at - started_at) if faults else 0.0
    print(
        f"cluster-chaos: where the run's time went: stream before the first fault {first_fault:.0f}s, faults "
        f"{faults_over - first_fault:.0f}s, the stream's tail and last answers {stream_over - faults_over:.0f}s, "
        f"quiescence {quiet - stream_over:.0f}s, counting and this report {time.monotonic() - started - quiet:.0f}s"
    )
    print(f"cluster-chaos: {verdict.summary()}")
    print(f"cluster-chaos: {'PASS' if verdict.ok else 'FAIL'} in {time.monotonic() - started:.0f}s")
    return 0 if verdict.ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("CHAOS_SCALE") or "full")
    parser.add_argument("--keep", action="store_true", help="keep the service logs directory")
    args = parser.parse_args()
    begun = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="brink-cluster-chaos-"))
    deployment = Deployment(workdir)
    atexit.register(deployment.cleanup)
    # A hang-up or a stop ends the run through its cleanup (sys.exit unwinds to the finally below); a SIGKILL
    # leaves it to the watchers (tests/chaos/reaper.py).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    code = 1
    try:
        say(
            f"scale {args.scale}: private RabbitMQ cluster {deployment.rabbit.url.split('@')[1]}, "
            f"PostgreSQL on {deployment.postgres.port}"
        )
        deployment.start()
        parts = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in deployment.seconds.items())
        say(f"started in {time.monotonic() - begun:.0f}s ({parts}; the database beside the cluster)")
        code = asyncio.run(run(SCALES[args.scale], deployment))
    finally:
        cleaning = time.monotonic()
        deployment.cleanup()
        say(f"cleaned up in {time.monotonic() - cleaning:.0f}s; wall time {time.monotonic() - begun:.0f}s")
        if args.keep or code != 0:
            say(f"service logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
