"""bench/results/<scale>.json, .md (figures, ratios to baselines, targets met or not and why) and -latency.png."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.stats import ratio

FULL_BURST = 10_000
NOISY_CORES = 0.2
PIPELINE = ("intake", "diagnosis", "outreach", "postgres", "rabbitmq")


def get(figures: dict[str, Any], *path: str) -> Any:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def derive(figures: dict[str, Any]) -> dict[str, Any]:
    """Every headline figure with its same-run baseline, the ratio, the target and whether it is met."""
    phase = lambda *p: get(figures, "phases", *p)  # noqa: E731 - a local shorthand
    http = phase("http_ceiling", "throughput_per_s")
    storage = phase("storage_ceiling", "throughput_per_s")
    lower = min(v for v in (http, storage) if v) if (http or storage) else None
    lower_name = "HTTP" if lower == http else "storage"
    commit_p50 = phase("storage_ceiling", "latency_ms", "p50")
    hop_p50 = phase("broker_hop", "latency_ms", "p50")
    floor = round(3 * commit_p50 + 2 * hop_p50, 2) if commit_p50 is not None and hop_p50 is not None else None
    burst = phase("burst", "events") or 0
    burst_target = 60.0 * burst / FULL_BURST
    ideal_burst = round(burst / lower, 2) if lower else None
    bare_rss = figures.get("bare_http_peak_rss_mb")
    rows: list[dict[str, Any]] = []

    def row(
        name: str,
        value: Any,
        unit: str,
        baseline: Any,
        baseline_name: str,
        target: str | None = None,
        met: bool | None = None,
    ) -> None:
        rows.append(
            {
                "figure": name,
                "value": value,
                "unit": unit,
                "baseline": baseline,
                "baseline_is": baseline_name,
                "ratio": ratio(value, baseline),
                "target": target,
                "met": met,
            }
        )

    isolated = phase("intake_isolated_saturation", "throughput_per_s")
    row(
        "intake saturation, intake alone (consumers paused)",
        isolated,
        "webhooks/s",
        lower,
        f"lower ceiling ({lower_name})",
        ">= 70% of the lower ceiling",
        None if not (isolated and lower) else isolated >= 0.7 * lower,
    )
    peer_alone = phase("peer_alone", "throughput_per_s")
    row(
        "intake saturation, intake alone, against the hand-written peer alone",
        isolated,
        "webhooks/s",
        peer_alone,
        "hand-written peer (stripe library, asyncpg, aio-pika confirm), alone",
        ">= 2x the peer",
        None if not (isolated and peer_alone) else isolated >= 2 * peer_alone,
    )
    with_backlog = phase("intake_with_backlog", "throughput_per_s")
    peer_backlog = phase("peer_with_backlog", "throughput_per_s")
    row(
        "intake saturation while diagnosis and outreach work through a backlog",
        with_backlog,
        "webhooks/s",
        peer_backlog,
        "the peer, consumers working through the same backlog",
        ">= 1x the peer",
        None if not (with_backlog and peer_backlog) else with_backlog >= peer_backlog,
    )
    for q in ("p50", "p99"):
        row(
            f"intake {q} to 2xx while the consumers work through a backlog",
            phase("intake_with_backlog", "latency_ms", q),
            "ms",
            phase("peer_with_backlog", "latency_ms", q),
            "the peer, same backlog",
        )
    row(
        "intake saturation, whole pipeline running",
        phase("intake_saturation", "throughput_per_s"),
        "webhooks/s",
        lower,
        f"lower ceiling ({lower_name})",
    )
    row("HTTP ceiling (bare FastAPI/uvicorn, same load generator)", http, "requests/s", None, "")
    row(
        "HTTP ceiling (bare FastAPI/uvicorn, wrk)",
        phase("http_ceiling_wrk", "throughput_per_s"),
        "requests/s",
        http,
        "HTTP ceiling (our load generator)",
    )
    row("storage ceiling (raw asyncpg, inbox+outbox per commit)", storage, "commits/s", None, "")
    fixed_p99 = phase("intake_fixed_rate", "latency_ms", "p99")
    for q in ("p50", "p95", "p99"):
        row(
            f"intake {q} to 2xx at {get(figures, 'scale', 'fixed_rate'):.0f}/s offered",
            phase("intake_fixed_rate", "latency_ms", q),
            "ms",
            phase("http_fixed_rate", "latency_ms", q),
            "bare endpoint, same rate",
            "< 50 ms" if q == "p99" else None,
            None if fixed_p99 is None or q != "p99" else fixed_p99 < 50,
        )
    for q in ("p50", "p95", "p99"):
        row(
            f"intake {q} to 2xx at saturation",
            phase("intake_saturation", "latency_ms", q),
            "ms",
            phase("http_ceiling", "latency_ms", q),
            "bare endpoint at saturation",
        )
    e2e_p99 = phase("end_to_end", "to_visible_ms", "p99")
    for q in ("p50", "p99"):
        row(
            f"end to end {q}, 2xx to case visible, {get(figures, 'scale', 'e2e_rate'):.0f}/s",
            phase("end_to_end", "to_visible_ms", q),
            "ms",
            floor,
            "3 raw commits + 2 broker hops (p50)",
            "< 1000 ms" if q == "p99" else None,
            None if e2e_p99 is None or q != "p99" else e2e_p99 < 1000,
        )
    all_open = phase("burst", "all_open_after_s")
    row(
        f"burst of {burst}: every case open after",
        all_open,
        "s",
        ideal_burst,
        "burst / lower ceiling",
        f"< {burst_target:.0f} s" + ("" if burst == FULL_BURST else f" (60 s scaled to {burst})"),
        None if all_open is None else all_open < burst_target,
    )
    per_event = phase("burst", "cpu_ms_per_event") or {}
    if per_event:
        total = round(sum(per_event.get(name) or 0 for name in PIPELINE), 2)
        row(
            "CPU per cancellation through the pipeline (burst)",
            total,
            "ms",
            None,
            "",
            "<= 2.6 ms",
            total <= 2.6,
        )
    for service, peak in (figures.get("peak_rss_mb") or {}).items():
        row(
            f"{service} peak memory (VmHWM, summed over its processes)",
            None if peak is None else round(peak, 1),
            "MB",
            None if bare_rss is None else round(bare_rss, 1),
            "bare FastAPI process",
            "< 200 MB",
            None if peak is None else peak < 200,
        )
    for key in ("intake_fixed_rate", "intake_saturation", "end_to_end", "burst"):
        cores = phase(key, "cpu_cores") or {}
        if "loadgen" in cores:
            row(
                f"load generator CPU during {key}",
                cores["loadgen"],
                "cores",
                cores.get("cores"),
                "cores on the machine",
            )
    return {"rows": rows, "lower_ceiling": lower, "e2e_floor_ms": floor}


def why(figures: dict[str, Any], row: dict[str, Any]) -> str:
    """A measured reason for a missed target, from the run's own CPU accounting and queue peaks."""
    phase = lambda *p: get(figures, "phases", *p)  # noqa: E731
    if row["met"] is not False:
        return ""
    if "backlog" in row["figure"]:
        return (
            f"intake: {cpu_line(phase('intake_with_backlog', 'cpu_cores') or {})}; the peer: "
            f"{cpu_line(phase('peer_with_backlog', 'cpu_cores') or {})}"
        )
    if row["figure"].startswith("CPU per cancellation"):
        return "where it goes is in the CPU-per-event table below and in the profiles"
    if row["figure"].startswith("intake saturation"):
        cores = phase("intake_isolated_saturation", "cpu_cores") or {}
        per = phase("intake_isolated_saturation", "cpu_ms_per_2xx", "intake")
        webhook, commit = machine_cost(figures)
        budget = ""
        if webhook and commit:
            total = sum(webhook.values())
            budget = (
                f" Each webhook cost the machine {total:.2f} ms of CPU "
                f"({', '.join(f'{k} {v:.2f}' for k, v in webhook.items())}), where a ceiling commit costs "
                f"{sum(commit.values()):.2f} ms ({', '.join(f'{k} {v:.2f}' for k, v in commit.items())}): "
                f"with every core busy that alone bounds the ratio near {sum(commit.values()) / total:.2f}."
            )
        schedule = phase("intake_isolated_saturation", "intake_schedule") or {}
        spent = ""
        if schedule:
            spent = (
                f" Intake's process was running {schedule['running']:.0%} of the phase, waiting for a core "
                f"{schedule['waiting_for_core']:.0%} (both held by other processes) and idle "
                f"{schedule['idle']:.0%} (every request waiting on its commit or the network)."
            )
        return (
            f"intake spent {per} ms of CPU per webhook and used {cores.get('intake')} cores (one Python "
            f"process runs on one core at a time); the ceilings skip what intake must do per request "
            f"(HTTP and middleware, signature, JSON, mapping to an event, the envelope, the one statement, "
            f"the relay's publish to RabbitMQ): see the profile.{budget}{spent} {cpu_line(cores)}"
        )
    if "to 2xx at" in row["figure"]:
        return (
            f"intake kept up with {phase('intake_fixed_rate', 'throughput_per_s')}/s of the offered rate; "
            f"{cpu_line(phase('intake_fixed_rate', 'cpu_cores') or {})}"
        )
    if row["figure"].startswith("end to end"):
        peaks = figures.get("queue_peaks") or {}
        return (
            f"work waited in queues and outboxes (peaks: {', '.join(f'{k[4:]} {v}' for k, v in peaks.items())}); "
            f"{cpu_line(phase('end_to_end', 'cpu_cores') or {})}"
        )
    if row["figure"].startswith("burst"):
        return (
            f"intake took the burst at {phase('burst', 'throughput_per_s')}/s; the cases follow at the pace of "
            f"diagnosis and outreach on the same cores (CPU per event below); "
            f"{cpu_line(phase('burst', 'cpu_cores') or {})}"
        )
    if "memory" in row["figure"]:
        return "see the RSS samples in the JSON"
    return ""


def machine_cost(figures: dict[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """CPU ms per webhook of everything intake alone kept busy, and per commit of the storage ceiling."""
    isolated = get(figures, "phases", "intake_isolated_saturation") or {}
    cores, accepted = isolated.get("cpu_cores") or {}, isolated.get("accepted_2xx") or 0
    webhook = {}
    if accepted and cores.get("wall_s"):
        webhook = {
            name: 1000 * cores[name] * cores["wall_s"] / accepted
            for name in ("intake", "postgres", "rabbitmq", "loadgen")
            if cores.get(name) is not None
        }
    return webhook, dict(get(figures, "phases", "storage_ceiling", "cpu_ms_per_commit") or {})


def cpu_line(cores: dict[str, Any]) -> str:
    """Where the machine's CPU went during a phase, in cores."""
    if not cores:
        return ""
    parts = ", ".join(
        f"{name} {cores[name]}"
        for name in ("intake", "peer", "diagnosis", "outreach", "postgres", "rabbitmq", "loadgen")
        if name in cores
    )
    noisy = " (the figure is noisy)" if (cores.get("others") or 0) > NOISY_CORES else ""
    return (
        f"machine busy {cores.get('machine')} of {cores.get('cores')} cores: {parts}, "
        f"other work {cores.get('others')}{noisy}"
    )


def fmt_load(figures: dict[str, Any], when: str) -> str:
    values = get(figures, "load_average", when)
    return " / ".join(f"{value:.2f}" for value in values) if values else "–"


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def markdown(figures: dict[str, Any], derived: dict[str, Any], name: str) -> str:
    scale = figures["scale"]
    cores = get(figures, "phases", "intake_fixed_rate", "cpu_cores") or {}
    lines = [
        f"# Brink benchmark — scale `{scale['name']}`, {figures['started_at']}, {figures['wall_seconds']} s",
        "",
        f"All services on one machine ({cores.get('cores')} cores) with PostgreSQL and RabbitMQ; "
        f"{scale['connections']} connections for the closed loops and the storage ceiling. "
        "Every ratio is to a baseline measured in this same run.",
        "",
        f"Load average (1, 5, 15 min) before the run {fmt_load(figures, 'before')}, after {fmt_load(figures, 'after')}"
        " (the machine is shared: other work shows in the CPU table below).",
        "",
        "Service settings that differ from the defaults: "
        + (
            ", ".join(
                f"{service} {' '.join(f'{k}={v}' for k, v in shown.items())}"
                for service, shown in (figures.get("service_settings") or {}).items()
                if shown
            )
            or "none"
        )
        + ".",
        "",
        "| figure | value | unit | baseline | ratio | target | met |",
        "| --- | ---: | --- | --- | ---: | --- | --- |",
    ]
    for row in derived["rows"]:
        baseline = f"{fmt(row['baseline'])} ({row['baseline_is']})" if row["baseline"] is not None else "–"
        met = {True: "yes", False: "**no**", None: "–"}[row["met"]]
        lines.append(
            f"| {row['figure']} | {fmt(row['value'])} | {row['unit']} | {baseline} | {fmt(row['ratio'])} "
            f"| {row['target'] or ''} | {met} |"
        )
    if figures.get("failed_phases"):
        lines += [
            "",
            "## Phases that failed",
            "",
            *(f"- {name}: {error}" for name, error in figures["failed_phases"].items()),
        ]
    missed = [(row, why(figures, row)) for row in derived["rows"] if row["met"] is False]
    if missed:
        lines += ["", "## Where a target is missed, and why (from this run's measurements)", ""]
        lines += [f"- **{row['figure']}**: {reason}" for row, reason in missed]
    lines += [
        "",
        "## CPU by phase (cores, average over the phase)",
        "",
        "PostgreSQL counts only the backends of this run's database (the ceiling loop's own backends during "
        "the storage ceiling); RabbitMQ is the whole broker. *Other work* is what the machine did besides: on a shared "
        f"machine it makes a phase's figures noisy (phases above {NOISY_CORES} cores are marked).",
        "",
        "| phase | intake | diagnosis | outreach | bare HTTP | peer | load generator | PostgreSQL | RabbitMQ "
        "| machine | other work |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, phase in figures["phases"].items():
        cpu = phase.get("cpu_cores") if isinstance(phase, dict) else None
        if cpu:
            loadgen = cpu.get("loadgen", cpu.get("asyncpg_loop"))
            noisy = " (noisy)" if (cpu.get("others") or 0) > NOISY_CORES else ""
            lines.append(
                f"| {key} | {fmt(cpu.get('intake'))} | {fmt(cpu.get('diagnosis'))} | {fmt(cpu.get('outreach'))} "
                f"| {fmt(cpu.get('bare_http'))} | {fmt(cpu.get('peer'))} | {fmt(loadgen)} | {fmt(cpu.get('postgres'))} "
                f"| {fmt(cpu.get('rabbitmq'))} | {fmt(cpu.get('machine'))} | {fmt(cpu.get('others'))}{noisy} |"
            )
    per_event = get(figures, "phases", "burst", "cpu_ms_per_event") or {}
    if per_event:
        parts = PIPELINE
        total = sum(per_event.get(name) or 0 for name in parts)
        lines += [
            "",
            "## CPU per event through the whole pipeline (the burst, first send to last case open)",
            "",
            "| intake | diagnosis | outreach | PostgreSQL | RabbitMQ | total | other work |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {' | '.join(fmt(per_event.get(name)) for name in parts)} | {fmt(round(total, 2))} "
            f"| {fmt(per_event.get('others'))} |",
            "",
            f"In milliseconds of CPU. At {fmt(round(total, 2))} ms an event, the pipeline's work alone fills "
            f"{(os.cpu_count() or 2)} cores at about {fmt(round(1000 * (os.cpu_count() or 2) / total)) if total else '–'} "
            "events/s.",
        ]
    peaks = figures.get("queue_peaks") or {}
    lines += [
        "",
        "## Backlogs (sampled every second)",
        "",
        *(f"- {name}: {value}" for name, value in peaks.items()),
        "",
        f"Latency plot: `{name}-latency.png`; profiles: `{name}-profile.txt` (intake), "
        f"`{name}-profile-diagnosis.txt`, `{name}-profile-outreach.txt`.",
        "",
    ]
    return "\n".join(lines)


def plot(figures: dict[str, Any], raw: dict[str, list[float]], target: Path) -> None:
    """Latency by percentile for each phase, and the backlogs over the run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    quantiles = [q / 10 for q in range(1000)] + [99.9, 99.99]
    for key, values in raw.items():
        if not values:
            continue
        ordered = sorted(values)
        xs = list(quantiles)
        ys = [ordered[min(int(q / 100 * len(ordered)), len(ordered) - 1)] * 1000 for q in xs]
        left.plot([1 / (1 - q / 100) for q in xs], ys, label=key)
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xticks([1, 2, 10, 100, 1000, 10000])
    left.set_xticklabels(["p0", "p50", "p90", "p99", "p99.9", "p99.99"])
    left.set_ylim(bottom=0.1)
    left.set_ylabel("latency (ms)")
    left.set_title("Latency by percentile")
    if left.get_lines():
        left.legend(fontsize=7)
    left.grid(True, which="both", alpha=0.3)
    samples = figures.get("samples") or []
    if samples:
        t = [s["t"] for s in samples]
        for key in ("diagnosis.cancellations", "outreach.diagnoses", "intake_outbox", "diagnosis_outbox"):
            right.plot(t, [s.get(key, 0) or 0 for s in samples], label=key)
        right.set_xlabel("seconds since services started")
        right.set_ylabel("messages / rows waiting")
        right.set_title("Queue depths and outbox backlogs")
        right.legend(fontsize=7)
        right.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, dpi=100)
    plt.close(figure)


def write(figures: dict[str, Any], raw: dict[str, list[float]], results: Path, name: str) -> None:
    derived = derive(figures)
    figures["summary"] = derived
    (results / f"{name}.json").write_text(json.dumps(figures, indent=1, default=str))
    (results / f"{name}.md").write_text(markdown(figures, derived, name))
    plot(figures, raw, results / f"{name}-latency.png")
