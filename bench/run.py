"""``python -m bench``: every phase of the benchmark in one run, on a private database and vhost."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import observe, profile, report
from bench.infra import ROOT, SERVICES, Process, Stage, free_port, private_stage, spawn, wait_healthy
from bench.loadgen import Requests
from bench.stats import latency_ms, summarise_load
from shared.supervisor import CONSUMER_NICENESS, CONSUMERS

RESULTS = ROOT / "bench" / "results"
# As `brink run` starts them: the consumers yield the CPU to intake under overload and catch up from their
# queues. BENCH_CONSUMER_NICENESS=0 runs them without.
SHOWN_SETTINGS = ("BRINK_NICENESS", "BRINK_INTAKE_PROCESSES", "BRINK_PREFETCH", "BRINK_CONSUMER_BATCH_SIZE")
SERVICE_PHASES = {"intake", "isolated", "peer", "e2e", "burst", "profile"}
PHASES = ("ceilings", "intake", "isolated", "peer", "e2e", "burst", "profile")
# Webhooks queued for the consumers before a phase that measures an endpoint while they work: more than they
# handle in the phase, so they are busy from its first second to its last.
BACKLOG_PER_SECOND = 400


@dataclass(frozen=True)
class Scale:
    """How long each phase runs; ``full`` is the one the targets speak of."""

    name: str
    connections: int
    ceiling_seconds: float
    fixed_rate: float
    fixed_seconds: float
    saturation_seconds: float
    isolated_seconds: float
    e2e_rate: float
    e2e_seconds: float
    burst: int
    profile_seconds: float


SCALES = {
    "short": Scale(
        "short",
        connections=16,
        ceiling_seconds=4,
        fixed_rate=300,
        fixed_seconds=5,
        saturation_seconds=4,
        isolated_seconds=4,
        e2e_rate=200,
        e2e_seconds=8,
        burst=500,
        profile_seconds=4,
    ),
    "full": Scale(
        "full",
        connections=16,
        ceiling_seconds=20,
        fixed_rate=300,
        fixed_seconds=30,
        saturation_seconds=20,
        isolated_seconds=15,
        e2e_rate=200,
        e2e_seconds=60,
        burst=10_000,
        profile_seconds=15,
    ),
}


class Bench:
    """Runs the phases and collects their figures into ``self.figures``."""

    def __init__(self, stage: Stage, scale: Scale, logs: Path, phases: set[str], name: str) -> None:
        self.name = name
        self.phases = phases
        self.stage = stage
        self.scale = scale
        self.logs = logs
        self.figures: dict[str, Any] = {"scale": asdict(scale), "phases": {}}
        self.raw: dict[str, list[float]] = {}
        self.services: dict[str, Process] = {}
        self.expected_cases = 0
        self.requests = Requests(secret=stage.secret, tag="x")

    # -- the load generator, in its own process ----------------------------------------------------------
    async def load(self, port: int, tag: str, **spec: Any) -> dict[str, Any]:
        spec = {"host": "127.0.0.1", "port": port, "secret": self.stage.secret, "tag": tag, **spec}
        spec_file = self.logs / f"load-{tag}.json"
        out_file = self.logs / f"load-{tag}-out.json"
        spec_file.write_text(json.dumps(spec))
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.loadgen", str(spec_file), str(out_file), cwd=ROOT
        )
        if await child.wait() != 0:
            raise RuntimeError(f"the load generator failed for phase {tag}")
        return json.loads(out_file.read_text())

    async def measured(self, key: str, processes: list[Process], port: int, tag: str, **spec: Any) -> dict[str, Any]:
        """One load phase with CPU accounting; its 2xx count towards the cases expected downstream."""
        sessions = await observe.sessions_established(self.stage.dsn)
        meter = observe.CpuMeter(processes, await self.server_groups())
        meter.start()
        result = await self.load(port, tag, **spec)
        summary = summarise_load(result)
        summary["cpu_cores"] = meter.stop(extra={"loadgen": result["cpu_seconds"]}, joined=await self.server_groups())
        for name in ("intake", "diagnosis", "outreach", "bare_http", "peer"):
            if summary["accepted_2xx"] and name in summary["cpu_cores"]:
                summary.setdefault("cpu_ms_per_2xx", {})[name] = round(
                    1000 * summary["cpu_cores"][name] * summary["cpu_cores"]["wall_s"] / summary["accepted_2xx"], 2
                )
        # Minus the one this measurement opens itself.
        summary["db_sessions_opened"] = await observe.sessions_established(self.stage.dsn) - sessions - 1
        self.figures["phases"][key] = summary
        self.raw[key] = [result["latency"][i] for i, s in enumerate(result["status"]) if 200 <= s < 300]
        print(
            f"bench: {key}: {summary['throughput_per_s']}/s, latency {summary['latency_ms']}, "
            f"non-2xx {summary['non_2xx']}, loadgen {summary['cpu_cores']['loadgen']} cores",
            flush=True,
        )
        return result

    async def server_groups(self) -> dict[str, list[int]]:
        """PostgreSQL backends of this run's database, and RabbitMQ (shared by every vhost on the machine)."""
        return {
            "postgres": await observe.database_backends(self.stage.dsn),
            "rabbitmq": observe.broker_pids(self.stage.amqp_url),
        }

    def open_spec(self, rate: float, seconds: float, lead: float = 0.5) -> dict[str, Any]:
        return {"model": "open", "rate": rate, "count": int(rate * seconds), "start_wall": time.time() + lead}

    def closed_spec(self, *, seconds: float | None = None, count: int | None = None) -> dict[str, Any]:
        return {"model": "closed", "connections": self.scale.connections, "duration": seconds, "count": count}

    # -- phases ------------------------------------------------------------------------------------------
    async def ceilings(self) -> None:
        """The storage ceiling (raw asyncpg) and the HTTP ceiling (bare FastAPI), each alone on the machine."""
        payload = self.logs / "payload.json"
        payload.write_bytes(self.requests.build(0).split(b"\r\n\r\n", 1)[1])
        out = self.logs / "storage.json"
        meter = observe.CpuMeter(
            [], {"rabbitmq": observe.broker_pids(self.stage.amqp_url), "postgres": observe.pids_named("postgres")}
        )
        meter.start()
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.ceilings",
            "storage",
            self.stage.dsn,
            str(self.scale.connections),
            str(self.scale.ceiling_seconds),
            str(payload),
            str(out),
            cwd=ROOT,
        )
        if await child.wait() != 0:
            raise RuntimeError("the storage ceiling failed")
        storage = json.loads(out.read_text())
        self.raw["storage_ceiling"] = storage["latency"]
        self.figures["phases"]["storage_ceiling"] = {
            "commits": storage["commits"],
            "seconds": round(storage["seconds"], 2),
            "throughput_per_s": round(storage["commits"] / storage["seconds"], 1),
            "latency_ms": latency_ms(storage["latency"]),
            "cpu_cores": meter.stop(
                extra={"asyncpg_loop": storage["cpu_seconds"], "postgres": storage["postgres_cpu_seconds"]}
            ),
        }
        self.figures["phases"]["storage_ceiling"]["cpu_ms_per_commit"] = {
            name: round(1000 * storage[key] / max(storage["commits"], 1), 3)
            for name, key in (("asyncpg_loop", "cpu_seconds"), ("postgres", "postgres_cpu_seconds"))
        }
        print(
            f"bench: storage ceiling: {self.figures['phases']['storage_ceiling']['throughput_per_s']} commits/s",
            flush=True,
        )

        port = free_port()
        bare = spawn("bare_http", ["-m", "bench.ceilings", "http", str(port)], self.stage.env(), self.logs)
        try:
            await wait_healthy(bare, port)
            await self.measured(
                "http_ceiling", [bare], port, "h", **self.closed_spec(seconds=self.scale.ceiling_seconds)
            )
            await self.measured(
                "http_fixed_rate",
                [bare],
                port,
                "g",
                **self.open_spec(self.scale.fixed_rate, self.scale.fixed_seconds / 2),
            )
            self.figures["phases"]["http_ceiling_wrk"] = await wrk_ceiling(port, self.scale, payload)
            self.figures["bare_http_peak_rss_mb"] = bare.peak_rss_mb()
        finally:
            bare.stop()

    async def broker_hop(self) -> None:
        hops = await observe.broker_hop(
            self.stage.amqp_url, rate=self.scale.e2e_rate, count=int(self.scale.e2e_rate * 3)
        )
        self.raw["broker_hop"] = hops
        self.figures["phases"]["broker_hop"] = {"messages": len(hops), "latency_ms": latency_ms(hops)}

    async def start_services(self) -> None:
        settings = self.figures.setdefault("service_settings", {})
        for service in SERVICES:
            env = self.stage.env()
            if service in CONSUMERS:
                env["BRINK_NICENESS"] = os.environ.get("BENCH_CONSUMER_NICENESS", str(CONSUMER_NICENESS))
            settings[service] = {key: env[key] for key in SHOWN_SETTINGS if key in env}
            self.services[service] = spawn(service, ["-m", f"services.{service}"], env, self.logs)
        for service in SERVICES:
            await wait_healthy(self.services[service], self.stage.ports[service])

    async def drain(self, phase: str, timeout: float) -> None:
        """Wait until every accepted cancellation has its case, so phases do not overlap downstream."""
        started = time.time()
        done = await observe.wait_for_cases(self.stage.dsn, self.expected_cases, timeout=timeout)
        self.figures["phases"][phase]["drained_after_s"] = round(done - started, 2) if done else None
        if done is None:
            print(f"bench: {phase}: cases still missing after {timeout:.0f} s", flush=True)

    async def intake_phases(self) -> None:
        procs = list(self.services.values())
        port = self.stage.ports["intake"]
        await self.measured("warmup", procs, port, "w", **self.open_spec(100, 2))
        self.expected_cases += self.figures["phases"]["warmup"]["accepted_2xx"]
        await self.drain("warmup", 60)

        await self.measured(
            "intake_fixed_rate", procs, port, "f", **self.open_spec(self.scale.fixed_rate, self.scale.fixed_seconds)
        )
        self.expected_cases += self.figures["phases"]["intake_fixed_rate"]["accepted_2xx"]
        await self.drain("intake_fixed_rate", 120)

        await self.measured(
            "intake_saturation", procs, port, "s", **self.closed_spec(seconds=self.scale.saturation_seconds)
        )
        self.expected_cases += self.figures["phases"]["intake_saturation"]["accepted_2xx"]
        await self.drain("intake_saturation", 180)

    async def isolated(self) -> None:
        """Intake's saturation throughput measured the way the ceilings were: with the machine to itself."""
        port = self.stage.ports["intake"]
        warm = await self.load(port, "j", **self.closed_spec(count=200))
        self.expected_cases += sum(1 for status in warm["status"] if 200 <= status < 300)
        # Intake alone, as the ceilings were measured: the consumers are paused and their queue fills.
        downstream = [self.services["diagnosis"], self.services["outreach"]]
        for process in downstream:
            process.pause()
        try:
            schedule = observe.ScheduleMeter(self.services["intake"].pids)
            await self.measured(
                "intake_isolated_saturation",
                [self.services["intake"]],
                port,
                "i",
                **self.closed_spec(seconds=self.scale.isolated_seconds),
            )
            self.figures["phases"]["intake_isolated_saturation"]["intake_schedule"] = schedule.stop()
        finally:
            for process in downstream:
                process.resume()
        self.expected_cases += self.figures["phases"]["intake_isolated_saturation"]["accepted_2xx"]
        await self.drain("intake_isolated_saturation", 180)

    async def peer(self) -> None:
        """The hand-written peer (``bench.peer``) against intake: each alone on the machine, then each taking
        webhooks while diagnosis and outreach work through the same backlog."""
        port = free_port()
        peer = spawn("peer", ["-m", "bench.peer", str(port)], self.stage.env(), self.logs)
        try:
            await wait_healthy(peer, port)
            await self.load(port, "q", **self.closed_spec(count=200))
            for process in self.services.values():
                process.pause()
            try:
                await self.measured(
                    "peer_alone", [peer], port, "k", **self.closed_spec(seconds=self.scale.isolated_seconds)
                )
            finally:
                for process in self.services.values():
                    process.resume()
            everyone = [*self.services.values(), peer]
            seconds = self.scale.saturation_seconds
            await self.with_backlog("u", seconds)
            await self.measured("peer_with_backlog", everyone, port, "m", **self.closed_spec(seconds=seconds))
            await self.drain("peer_with_backlog", 300)
            await self.with_backlog("v", seconds)
            await self.measured(
                "intake_with_backlog", everyone, self.stage.ports["intake"], "n", **self.closed_spec(seconds=seconds)
            )
            self.expected_cases += self.figures["phases"]["intake_with_backlog"]["accepted_2xx"]
            await self.drain("intake_with_backlog", 300)
        finally:
            peer.stop()

    async def with_backlog(self, tag: str, seconds: float) -> None:
        """Queue more cancellations than the consumers handle in ``seconds``, then let them work."""
        consumers = [self.services[name] for name in CONSUMERS]
        for process in consumers:
            process.pause()
        try:
            result = await self.load(
                self.stage.ports["intake"], tag, **self.closed_spec(count=int(BACKLOG_PER_SECOND * seconds))
            )
        finally:
            for process in consumers:
                process.resume()
        self.expected_cases += sum(1 for status in result["status"] if 200 <= status < 300)

    async def end_to_end(self) -> None:
        """Steady rate; each case's visibility (DB poll every 25 ms) minus its webhook's 2xx."""
        rate, seconds = self.scale.e2e_rate, self.scale.e2e_seconds
        spec = self.open_spec(rate, seconds, lead=1.0)
        ids = Requests(secret=self.stage.secret, tag="e")
        total = spec["count"]

        def sent() -> int:
            return max(min(int((time.time() - spec["start_wall"]) * rate) + 1, total), 0)

        watcher = asyncio.create_task(
            observe.watch_cases(self.stage.dsn, ids.cancellation_id, sent, total, stop_after=seconds + 60)
        )
        result = await self.measured(
            "end_to_end", list(self.services.values()), self.stage.ports["intake"], "e", **spec
        )
        seen = await watcher
        acked = {
            ids.cancellation_id(i): done
            for i, done, s in zip(result["index"], result["done_wall"], result["status"], strict=True)
            if 200 <= s < 300
        }
        self.expected_cases += len(acked)
        opened = await observe.opened_at(self.stage.dsn, list(acked))
        visible = [seen[cid] - done for cid, done in acked.items() if cid in seen]
        committed = [opened[cid] - done for cid, done in acked.items() if cid in opened]
        self.raw["end_to_end"] = visible
        self.figures["phases"]["end_to_end"].update(
            {
                "cases_seen": len(visible),
                "cases_missing": len(acked) - len(visible),
                "to_visible_ms": latency_ms(visible),
                "to_opened_at_ms": latency_ms(committed),
                "poll_interval_ms": 25,
            }
        )
        print(f"bench: end to end: {self.figures['phases']['end_to_end']['to_visible_ms']}", flush=True)

    async def burst(self) -> None:
        """``burst`` cancellations as fast as intake takes them; time from the first send to the last case."""
        before = await observe.count_cases(self.stage.dsn)
        # The whole burst, from the first send to the last case: what one event costs each part of the pipeline.
        whole = observe.CpuMeter(list(self.services.values()), await self.server_groups())
        whole.start()
        started = time.time()
        waiter = asyncio.create_task(observe.wait_for_cases(self.stage.dsn, before + self.scale.burst, timeout=300))
        await self.measured(
            "burst",
            list(self.services.values()),
            self.stage.ports["intake"],
            "b",
            **self.closed_spec(count=self.scale.burst),
        )
        finished = await waiter
        cores = whole.stop(joined=await self.server_groups())
        phase = self.figures["phases"]["burst"]
        phase["events"] = self.scale.burst
        phase["all_open_after_s"] = round(finished - started, 2) if finished else None
        phase["cpu_ms_per_event"] = {
            name: round(1000 * cores[name] * cores["wall_s"] / self.scale.burst, 2)
            for name in ("intake", "diagnosis", "outreach", "postgres", "rabbitmq", "others")
        }
        print(f"bench: burst CPU per event (ms): {phase['cpu_ms_per_event']}", flush=True)
        self.expected_cases += phase["accepted_2xx"]
        print(f"bench: burst of {self.scale.burst}: all open after {phase['all_open_after_s']} s", flush=True)

    async def profile_services(self) -> None:
        """py-spy on every service during a short saturation run: where a webhook's and a message's CPU goes.

        Intake is fed as fast as it answers; diagnosis and outreach work through the queue that builds behind it.
        """
        recorders = {}
        for service, process in self.services.items():
            recorder = await profile.start(process.pid, self.scale.profile_seconds, self.logs / f"{service}.pyspy")
            if recorder is None:
                self.figures["profile"] = "py-spy is not installed (pip install -e '.[bench]')"
                return
            recorders[service] = recorder
        result = await self.load(
            self.stage.ports["intake"], "p", **self.closed_spec(seconds=self.scale.profile_seconds)
        )
        self.expected_cases += sum(1 for status in result["status"] if 200 <= status < 300)
        for recorder in recorders.values():
            await recorder.wait()
        titles = {
            "intake": "intake under closed-loop saturation",
            "diagnosis": "diagnosis working through the queue that intake fills",
            "outreach": "outreach working through the queue that diagnosis fills",
        }
        self.figures["profile"] = {
            service: profile.summarise(
                self.logs / f"{service}.pyspy",
                RESULTS / f"{self.name}-profile{'' if service == 'intake' else '-' + service}",
                titles[service],
            )
            for service in recorders
        }

    async def guarded(self, name: str, phase: Any) -> None:
        """Run a phase; a failure is recorded with the figures and the run goes on to the next phase."""
        try:
            await phase()
        except Exception as error:  # one broken phase must not cost the whole run's figures
            self.figures.setdefault("failed_phases", {})[name] = f"{error.__class__.__name__}: {error}"[:500]
            print(f"bench: phase {name} failed: {error!r}", file=sys.stderr, flush=True)

    async def run(self) -> None:
        if "ceilings" in self.phases:
            await self.guarded("ceilings", self.ceilings)
            await self.guarded("broker_hop", self.broker_hop)
        if not self.phases & SERVICE_PHASES:
            return
        await self.start_services()
        sampler = observe.Sampler(self.stage.dsn, self.stage.amqp_url, list(self.services.values()))
        stop = asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop))
        try:
            for name, phase in (
                ("intake", self.intake_phases),
                ("isolated", self.isolated),
                ("peer", self.peer),
                ("e2e", self.end_to_end),
                ("burst", self.burst),
                ("profile", self.profile_services),
            ):
                if name in self.phases:
                    await self.guarded(name, phase)
            self.figures["peak_rss_mb"] = {name: p.peak_rss_mb() for name, p in self.services.items()}
        finally:
            stop.set()
            await asyncio.gather(sampling, return_exceptions=True)
            for process in self.services.values():
                process.stop()
        self.figures["samples"] = sampler.samples
        self.figures["queue_peaks"] = sampler.peaks()


async def wrk_ceiling(port: int, scale: Scale, payload: Path) -> dict[str, Any] | None:
    """The HTTP ceiling again with wrk (C, one thread), when installed: less load-generator CPU in the way."""
    if shutil.which("wrk") is None:
        return None
    script = payload.with_suffix(".lua")
    body = payload.read_text().replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(f'wrk.method = "POST"\nwrk.body = "{body}"\nwrk.headers["Content-Type"] = "application/json"\n')
    child = await asyncio.create_subprocess_exec(
        "wrk",
        "-t1",
        f"-c{scale.connections}",
        f"-d{int(scale.ceiling_seconds)}s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/webhooks/stripe",
        stdout=asyncio.subprocess.PIPE,
    )
    output = (await child.communicate())[0].decode()
    for line in output.splitlines():
        if line.startswith("Requests/sec:"):
            return {"throughput_per_s": float(line.split()[1]), "tool": "wrk -t1"}
    return {"error": output[-300:]}


def warnings_in(logs: Path) -> dict[str, dict[str, int]]:
    """How many log lines of each event each service wrote at WARNING or above (logging is set to WARNING)."""
    counts: dict[str, dict[str, int]] = {}
    for log in sorted(logs.glob("*.log")):
        events: dict[str, int] = {}
        for line in log.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line).get("event", "?")
            except (ValueError, AttributeError):
                event = line[:80]
            events[event] = events.get(event, 0) + 1
        if events:
            counts[log.stem] = events
    return counts


async def main_async(scale: Scale, phases: set[str], name: str) -> dict[str, Any]:
    logs = Path(tempfile.mkdtemp(prefix="brink-bench-"))
    started = time.time()
    load_before = os.getloadavg()
    async with private_stage() as stage:
        bench = Bench(stage, scale, logs, phases, name)
        try:
            await bench.run()
        except Exception:
            print(f"bench: failed; process logs are in {logs}", file=sys.stderr)
            raise
    bench.figures["wall_seconds"] = round(time.time() - started, 1)
    # On a shared machine: how busy it was, before and after (1, 5 and 15 minute averages).
    bench.figures["load_average"] = {"before": load_before, "after": os.getloadavg()}
    bench.figures["started_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    bench.figures["service_log_warnings"] = warnings_in(logs)
    report.write(bench.figures, bench.raw, RESULTS, name)
    if os.environ.get("BENCH_KEEP_LOGS"):
        print(f"bench: process logs kept in {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)
    return bench.figures


def main() -> None:
    """Run the benchmark at a scale and write bench/results/<scale>.{json,md,png}."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}; results then go to <scale>-partial.*",
    )
    args = parser.parse_args()
    phases = {name.strip() for name in args.phases.split(",") if name.strip()}
    if unknown := phases - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.scale if phases == set(PHASES) else f"{args.scale}-partial"
    figures = asyncio.run(main_async(SCALES[args.scale], phases, name))
    print(f"bench: done in {figures['wall_seconds']} s; see {RESULTS / (name + '.md')}")
