"""``python -m bench.soak``: many cancellations at a steady rate through the whole pipeline, retention biting.

The three services run as ``make bench`` runs them (diagnosis and outreach at the niceness ``brink run`` gives
them), with ``BRINK_RETENTION_DAYS`` shortened so sent outbox rows, handled-message ids and stored webhooks
are purged during the run. The load is sent in windows of ``--window`` webhooks at ``--rate`` per second
(open model: latency from each request's scheduled time). Each window records intake's latency, the CPU each
part of the pipeline spent per accepted webhook, the queue depths and the size of every table; the first and
the last ``--compare`` webhooks are then compared: intake p99 and CPU per cancellation within 10%, and the
tables retention keeps small no bigger at the end than once retention had started biting. Each window also times
a fixed piece of work (the machine probe), so a machine that slowed down during the run is told apart from a
pipeline that did: CPU per cancellation is compared in units of the probe as well.

Results: ``bench/results/soak.{json,md}`` for a run of a million or more, ``soak-<events>.{json,md}``
otherwise. A run that cannot go on (the consumers fall ever further behind: the machine does not hold the rate)
or is stopped (Ctrl-C, SIGTERM) stops its services, drops its database and vhost, and leaves the windows it
measured in ``soak-<events>-stopped.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import observe
from bench.infra import SERVICES, Process, Stage, private_stage, spawn, wait_healthy
from bench.stats import latency_ms, percentile
from shared.supervisor import CONSUMER_NICENESS, CONSUMERS

RESULTS = Path(__file__).resolve().parent / "results"
RETAINED = (
    "intake_webhook_events",
    "intake_outbox",
    "diagnosis_outbox",
    "diagnosis_handled_messages",
    "outreach_outbox",
    "outreach_handled_messages",
)
# Domain data: a case, its tasks, a diagnosis per cancellation. They grow with the customers, by design.
KEPT = ("intake_subscription_states", "diagnosis_cancellations", "diagnosis_diagnoses", "outreach_cases")
QUEUES = ("diagnosis.cancellations", "outreach.diagnoses")
PIPELINE = ("intake", "diagnosis", "outreach", "postgres", "rabbitmq")
WITHIN = 0.10  # the last webhooks' p99 and CPU per cancellation within 10% of the first's
FULL = 1_000_000
# Not holding the rate: at the end of this many windows in a row the queues held more, each time, than the last,
# and by then more than ``--max-backlog-seconds`` of arrivals. A run past that point measures a backlog, not the
# steady state it is for, and would take hours to say so.
GROWING_WINDOWS = 3


class RateNotHeld(RuntimeError):
    """The consumers fall ever further behind the offered rate."""


@dataclass(frozen=True)
class Plan:
    events: int
    rate: float
    window: int
    compare: int
    retention_seconds: float
    retention_interval_seconds: float
    consumer_niceness: int = CONSUMER_NICENESS
    max_backlog_seconds: float = 60.0


# A fixed piece of work small enough to stay in a core's own caches: the CPU it takes moves only with the machine
# (its clock, a busy sibling thread, the host's other guests), never with Brink's tables. Printed in seconds.
MACHINE_PROBE = (
    "import time\nt = time.process_time()\nsum(i * i % 7 for i in range(600_000))\nprint(time.process_time() - t)"
)


async def machine_probe_ms(delay: float, tries: int = 5) -> float:
    """After ``delay`` seconds, the least CPU of ``tries`` runs of ``MACHINE_PROBE`` (milliseconds), each in a new
    process at the lowest priority so the pipeline barely notices it."""
    await asyncio.sleep(delay)
    spent = []
    for _ in range(tries):
        child = await asyncio.create_subprocess_exec(
            "nice", "-n", "19", sys.executable, "-c", MACHINE_PROBE, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await child.communicate()
        spent.append(float(out))
    return round(1000 * min(spent), 2)


class Soak:
    def __init__(self, stage: Stage, plan: Plan, logs: Path) -> None:
        self.stage = stage
        self.plan = plan
        self.logs = logs
        self.services: dict[str, Process] = {}
        self.windows: list[dict[str, Any]] = []
        self.latencies: dict[str, list[float]] = {"first": [], "last": []}
        self.final: dict[str, Any] = {}

    async def start_services(self) -> None:
        for service in SERVICES:
            env = self.stage.env()
            env["BRINK_RETENTION_DAYS"] = repr(self.plan.retention_seconds / 86_400)
            env["BRINK_RETENTION_INTERVAL_SECONDS"] = repr(self.plan.retention_interval_seconds)
            if service in CONSUMERS:
                env["BRINK_NICENESS"] = str(self.plan.consumer_niceness)
            self.services[service] = spawn(service, ["-m", f"services.{service}"], env, self.logs)
        for service in SERVICES:
            await wait_healthy(self.services[service], self.stage.ports[service])

    async def load(self, first_index: int, count: int) -> dict[str, Any]:
        spec = {
            "host": "127.0.0.1",
            "port": self.stage.ports["intake"],
            "secret": self.stage.secret,
            "tag": "z",
            "model": "open",
            "rate": self.plan.rate,
            "count": count,
            "first_index": first_index,
            "start_wall": time.time() + 0.5,
        }
        spec_file, out_file = self.logs / "soak-load.json", self.logs / "soak-load-out.json"
        spec_file.write_text(json.dumps(spec))
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", str(spec_file), str(out_file), cwd=Path(__file__).parent.parent
        )
        try:
            code = await child.wait()
        except asyncio.CancelledError:
            child.kill()
            await child.wait()
            raise
        if code != 0:
            raise RuntimeError("the load generator failed")
        return json.loads(out_file.read_text())

    async def groups(self) -> dict[str, list[int]]:
        return {
            "postgres": await observe.database_backends(self.stage.dsn),
            "rabbitmq": observe.broker_pids(self.stage.amqp_url),
        }

    async def window(self, number: int, first_index: int, count: int) -> None:
        meter = observe.CpuMeter(list(self.services.values()), await self.groups())
        meter.start()
        probe = asyncio.create_task(machine_probe_ms(delay=count / self.plan.rate / 2))
        try:
            result = await self.load(first_index, count)
        except BaseException:
            probe.cancel()
            raise
        machine_ms = await probe
        cores = meter.stop(extra={"loadgen": result["cpu_seconds"]}, joined=await self.groups())
        ok = [
            latency for latency, status in zip(result["latency"], result["status"], strict=True) if 200 <= status < 300
        ]
        accepted = len(ok)
        cpu_seconds = {name: cores.get(name, 0.0) * cores["wall_s"] for name in PIPELINE}
        record = {
            "window": number,
            "first_index": first_index,
            "sent": count,
            "accepted_2xx": accepted,
            "non_2xx": len(result["status"]) - accepted,
            "connection_errors": result["errors"],
            "wall_s": cores["wall_s"],
            "latency_ms": latency_ms(ok),
            "cpu_seconds": {name: round(seconds, 3) for name, seconds in cpu_seconds.items()},
            "cpu_ms_per_event": round(1000 * sum(cpu_seconds.values()) / accepted, 3) if accepted else None,
            "machine_cores": cores["machine"],
            "other_work_cores": cores["others"],
            "machine_probe_ms": machine_ms,
            "load_average": os.getloadavg(),
            **await self.state(),
        }
        self.windows.append(record)
        end = first_index + count
        if first_index < self.plan.compare:
            self.latencies["first"] += ok
        if end > self.plan.events - self.plan.compare:
            self.latencies["last"] += ok
        print(
            f"soak: {end:,} sent; p99 {record['latency_ms']['p99']} ms; CPU {record['cpu_ms_per_event']} ms/event; "
            f"machine probe {machine_ms} ms; queues {record['queues']}; retained {sum(record['table_bytes'][t] for t in RETAINED) // 1024} KiB; "
            f"load {record['load_average'][0]:.1f}",
            flush=True,
        )

    async def state(self) -> dict[str, Any]:
        """Queue depths, table sizes and the rows retention has purged so far (from the services' /metrics)."""
        import aio_pika

        queues = {}
        connection = await aio_pika.connect(self.stage.amqp_url)
        async with connection, connection.channel() as channel:
            for name in QUEUES:
                declared = await channel.declare_queue(name, passive=True)
                queues[name] = declared.declaration_result.message_count or 0
        database = await observe.connect(self.stage.dsn)
        try:
            sizes = {
                row["relname"]: row["bytes"]
                for row in await database.fetch(
                    "SELECT relname, pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables "
                    "WHERE relname = ANY($1::text[])",
                    [*RETAINED, *KEPT],
                )
            }
            cases = await database.fetchval(
                "SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 'outreach_cases'"
            )
        finally:
            await database.close()
        return {"queues": queues, "table_bytes": sizes, "cases_inserted": cases, "purged": await self.purged()}

    async def purged(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        async with httpx.AsyncClient(timeout=10) as client:
            for service in SERVICES:
                text = (await client.get(f"http://127.0.0.1:{self.stage.ports[service]}/metrics")).text
                for line in text.splitlines():
                    if line.startswith("brink_retention_purged_rows_total{"):
                        table = line.split('table="', 1)[1].split('"', 1)[0]
                        totals[table] = float(line.rsplit(" ", 1)[1])
        return totals

    async def run(self) -> None:
        try:
            await self.start_services()  # inside: a service that fails to start must not leave the others running
            number, index = 0, 0
            while index < self.plan.events:
                count = min(self.plan.window, self.plan.events - index)
                await self.window(number, index, count)
                self.check_rate_held()
                number, index = number + 1, index + count
            await self.drain()
        finally:
            for process in self.services.values():
                process.stop()

    def check_rate_held(self) -> None:
        """Raise RateNotHeld once the queues have grown at the end of GROWING_WINDOWS windows in a row, past
        ``max_backlog_seconds`` of arrivals."""
        backlogs = [sum(w["queues"].values()) for w in self.windows[-(GROWING_WINDOWS + 1) :]]
        if len(backlogs) <= GROWING_WINDOWS:
            return
        growing = all(later > earlier for earlier, later in itertools.pairwise(backlogs))
        limit = self.plan.rate * self.plan.max_backlog_seconds
        if growing and backlogs[-1] > limit:
            sent = self.windows[-1]["first_index"] + self.windows[-1]["sent"]
            raise RateNotHeld(
                f"the machine does not hold {self.plan.rate:g}/s: the queues grew at the end of each of the last "
                f"{GROWING_WINDOWS} windows, {' -> '.join(f'{b:,}' for b in backlogs)} messages, past "
                f"{limit:,.0f} ({self.plan.max_backlog_seconds:g} s of arrivals), after {sent:,} sent; "
                f"try a lower --rate"
            )

    async def drain(self, timeout: float = 900) -> None:
        """Until the consumers' queues are empty, then count the cases once."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = await self.state()
            if not any(state["queues"].values()):
                break
            await asyncio.sleep(5)
        self.final = await self.state()
        self.final["cases"] = await observe.count_cases(self.stage.dsn)


def compare(plan: Plan, windows: list[dict[str, Any]], latencies: dict[str, list[float]]) -> dict[str, Any]:
    """The first and the last ``plan.compare`` webhooks side by side."""

    def part(selected: list[dict[str, Any]], values: list[float]) -> dict[str, Any]:
        accepted = sum(w["accepted_2xx"] for w in selected)
        cpu = {name: sum(w["cpu_seconds"][name] for w in selected) for name in PIPELINE}
        side = {
            "webhooks": accepted,
            "p50_ms": round(1000 * (percentile(values, 50) or 0), 2),
            "p99_ms": round(1000 * (percentile(values, 99) or 0), 2),
            "cpu_ms_per_event": {name: round(1000 * cpu[name] / accepted, 3) for name in PIPELINE} if accepted else {},
            "cpu_ms_per_event_total": round(1000 * sum(cpu.values()) / accepted, 3) if accepted else None,
            "retained_bytes": sum(selected[-1]["table_bytes"].get(t, 0) for t in RETAINED),
        }
        probes = [w["machine_probe_ms"] for w in selected]
        side["machine_probe_ms"] = statistics.median(probes) if probes else None
        total, probe = side["cpu_ms_per_event_total"], side["machine_probe_ms"]
        side["cpu_per_probe"] = round(total / probe, 4) if total and probe else None
        return side

    first = part([w for w in windows if w["first_index"] < plan.compare], latencies["first"])
    last = part([w for w in windows if w["first_index"] + w["sent"] > plan.events - plan.compare], latencies["last"])

    def within(a: float | None, b: float | None) -> bool | None:
        return None if not a or b is None else b <= a * (1 + WITHIN)

    return {
        "first": first,
        "last": last,
        "p99_within_10pct": within(first["p99_ms"], last["p99_ms"]),
        "cpu_within_10pct": within(first["cpu_ms_per_event_total"], last["cpu_ms_per_event_total"]),
        # The same, with each part's CPU counted in units of the machine probe: a machine that slowed down between
        # the two parts shows here as the probe's change, not as Brink's.
        "cpu_per_probe_within_10pct": within(first["cpu_per_probe"], last["cpu_per_probe"]),
        # Retention bites once rows are older than its age: the retained tables at the end of the first part
        # (when it had been biting for a while) against the end of the run.
        "retained_bounded": last["retained_bytes"] <= 1.25 * first["retained_bytes"]
        if first["retained_bytes"]
        else None,
    }


def markdown(figures: dict[str, Any]) -> str:
    plan, result = figures["plan"], figures["comparison"]
    first, last = result["first"], result["last"]
    yes = {True: "yes", False: "**no**", None: "–"}

    def change(a: float | None, b: float | None) -> str:
        return f"{(b / a - 1):+.1%}" if a and b is not None else "–"

    lines = [
        f"# Brink soak — {plan['events']:,} cancellations at {plan['rate']:.0f}/s, {figures['started_at']}, "
        f"{figures['wall_seconds']:,.0f} s",
        "",
        f"All services on one shared 2-core machine with PostgreSQL and RabbitMQ; retention age "
        f"{plan['retention_seconds']:.0f} s (`BRINK_RETENTION_DAYS` shortened so it bites), purging every "
        f"{plan['retention_interval_seconds']:.0f} s; diagnosis and outreach at niceness {plan['consumer_niceness']}. "
        f"Windows of {plan['window']:,}; the first and the last {plan['compare']:,} webhooks compared. Load average "
        f"before {' / '.join(f'{v:.2f}' for v in figures['load_average']['before'])}, after "
        f"{' / '.join(f'{v:.2f}' for v in figures['load_average']['after'])}.",
        "",
        "| figure | first | last | change | within 10% |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| intake p99 to 2xx (ms) | {first['p99_ms']} | {last['p99_ms']} | {change(first['p99_ms'], last['p99_ms'])} "
        f"| {yes[result['p99_within_10pct']]} |",
        f"| intake p50 to 2xx (ms) | {first['p50_ms']} | {last['p50_ms']} | {change(first['p50_ms'], last['p50_ms'])} | |",
        f"| CPU per cancellation, whole pipeline (ms) | {first['cpu_ms_per_event_total']} "
        f"| {last['cpu_ms_per_event_total']} | {change(first['cpu_ms_per_event_total'], last['cpu_ms_per_event_total'])} "
        f"| {yes[result['cpu_within_10pct']]} |",
        *(
            f"| … {name} (ms) | {first['cpu_ms_per_event'].get(name)} | {last['cpu_ms_per_event'].get(name)} "
            f"| {change(first['cpu_ms_per_event'].get(name), last['cpu_ms_per_event'].get(name))} | |"
            for name in PIPELINE
        ),
        f"| machine probe: fixed work's CPU, median of the windows (ms) | {first['machine_probe_ms']} "
        f"| {last['machine_probe_ms']} | {change(first['machine_probe_ms'], last['machine_probe_ms'])} | |",
        f"| CPU per cancellation in machine probes | {first['cpu_per_probe']} | {last['cpu_per_probe']} "
        f"| {change(first['cpu_per_probe'], last['cpu_per_probe'])} | {yes[result['cpu_per_probe_within_10pct']]} |",
        f"| tables retention keeps small (KiB) | {first['retained_bytes'] // 1024:,} | {last['retained_bytes'] // 1024:,} "
        f"| {change(first['retained_bytes'], last['retained_bytes'])} | bounded: {yes[result['retained_bounded']]} |",
        "",
        f"Accepted {figures['accepted_2xx']:,} of {figures['sent']:,}; cases at the end {figures['final'].get('cases'):,}; "
        f"queues at the end {figures['final'].get('queues')}; rows purged {figures['final'].get('purged')}.",
        "",
        "## Tables at the end (bytes with indexes)",
        "",
        "| table | first window | end of the first part | end | kept small by retention |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    windows = figures["windows"]
    boundary = [w for w in windows if w["first_index"] < plan["compare"]][-1]
    for table in (*RETAINED, *KEPT):
        lines.append(
            f"| {table} | {windows[0]['table_bytes'].get(table, 0) // 1024:,} KiB "
            f"| {boundary['table_bytes'].get(table, 0) // 1024:,} KiB "
            f"| {figures['final']['table_bytes'].get(table, 0) // 1024:,} KiB | {'yes' if table in RETAINED else 'no: domain data'} |"
        )
    lines += [
        "",
        "## Windows",
        "",
        "| sent up to | p50 ms | p99 ms | CPU ms/event | machine probe ms | queues | retained KiB | other work (cores) "
        "| load |",
        "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for w in windows:
        lines.append(
            f"| {w['first_index'] + w['sent']:,} | {w['latency_ms']['p50']} | {w['latency_ms']['p99']} "
            f"| {w['cpu_ms_per_event']} | {w['machine_probe_ms']} | {', '.join(str(v) for v in w['queues'].values())} "
            f"| {sum(w['table_bytes'].get(t, 0) for t in RETAINED) // 1024:,} | {w['other_work_cores']} "
            f"| {w['load_average'][0]:.1f} |"
        )
    return "\n".join(lines) + "\n"


async def main_async(plan: Plan) -> dict[str, Any]:
    logs = Path(tempfile.mkdtemp(prefix="brink-soak-"))
    started, load_before = time.time(), os.getloadavg()
    name = "soak" if plan.events >= FULL else f"soak-{plan.events}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    stop_on_signals(asyncio.current_task())
    async with private_stage() as stage:
        soak = Soak(stage, plan, logs)
        try:
            await soak.run()
        except (Exception, asyncio.CancelledError) as error:
            stopped = RESULTS / f"{name}-stopped.json"
            why = str(error) if isinstance(error, RateNotHeld) else f"stopped: {error!r}"
            stopped.write_text(json.dumps({"plan": asdict(plan), "why": why, "windows": soak.windows}, default=str))
            print(f"soak: {why}\nsoak: the windows measured are in {stopped}; process logs in {logs}", file=sys.stderr)
            if isinstance(error, RateNotHeld):
                raise SystemExit(1) from None
            if isinstance(error, asyncio.CancelledError):
                raise SystemExit(130) from None  # the stage is dropped on the way out, as for any other end
            raise
    figures = {
        "plan": asdict(plan),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "sent": sum(w["sent"] for w in soak.windows),
        "accepted_2xx": sum(w["accepted_2xx"] for w in soak.windows),
        "final": soak.final,
        "comparison": compare(plan, soak.windows, soak.latencies),
        "windows": soak.windows,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=1, default=str))
    (RESULTS / f"{name}.md").write_text(markdown(figures))
    shutil.rmtree(logs, ignore_errors=True)
    print(f"soak: done in {figures['wall_seconds']} s; see {RESULTS / (name + '.md')}")
    return figures


def stop_on_signals(task: asyncio.Task[Any] | None) -> None:
    """SIGINT and SIGTERM cancel the run, so its services are stopped and its database and vhost dropped: killed
    outright it left three services and the database behind."""
    loop = asyncio.get_running_loop()
    if task is not None:
        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, task.cancel)


def main() -> None:
    """Run the soak and write bench/results/soak*.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=FULL)
    parser.add_argument("--rate", type=float, default=200.0, help="webhooks per second, steady (open model)")
    parser.add_argument("--window", type=int, default=10_000, help="webhooks per measured window")
    parser.add_argument("--compare", type=int, default=None, help="first and last webhooks compared (default 10%%)")
    # Short enough that retention bites within the first tenth of a run at the default rate: the first part is
    # then the steady state the last is compared with, not tables still filling up with nothing yet purged.
    parser.add_argument("--retention-seconds", type=float, default=60.0)
    parser.add_argument("--retention-interval-seconds", type=float, default=10.0)
    parser.add_argument(
        "--consumer-niceness",
        type=int,
        default=CONSUMER_NICENESS,
        help="as brink run starts them; 0 where other people's work shares the machine and would starve them",
    )
    parser.add_argument(
        "--max-backlog-seconds",
        type=float,
        default=60.0,
        help=f"stop once the queues grew {GROWING_WINDOWS} windows in a row past this many seconds of arrivals",
    )
    args = parser.parse_args()
    compare_count = args.compare or max(args.events // 10, args.window)
    if 2 * compare_count > args.events:
        parser.error("--compare must leave the first and the last parts apart (at most half of --events)")
    plan = Plan(
        events=args.events,
        rate=args.rate,
        window=args.window,
        compare=compare_count,
        retention_seconds=args.retention_seconds,
        retention_interval_seconds=args.retention_interval_seconds,
        consumer_niceness=args.consumer_niceness,
        max_backlog_seconds=args.max_backlog_seconds,
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main_async(plan))


if __name__ == "__main__":
    main()
