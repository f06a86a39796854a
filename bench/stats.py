"""Turning per-request records into the figures: throughput, percentiles, ratios."""

from __future__ import annotations

import math
from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0-100) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(q / 100 * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def latency_ms(values: list[float]) -> dict[str, float | None]:
    return {f"p{q}": ms(percentile(values, q)) for q in (50, 95, 99)} | {"max": ms(max(values, default=None))}


def summarise_load(result: dict[str, Any]) -> dict[str, Any]:
    """Requests, 2xx, throughput of 2xx over the span from first send to last answer, latency to the answer."""
    statuses = result["status"]
    ok = [i for i, status in enumerate(statuses) if 200 <= status < 300]
    starts = [done - latency for done, latency in zip(result["done_wall"], result["latency"], strict=True)]
    span = (max(result["done_wall"]) - min(starts)) if ok else 0.0
    return {
        "requests": len(statuses) + result["errors"],
        "accepted_2xx": len(ok),
        "non_2xx": len(statuses) - len(ok),
        "connection_errors": result["errors"],
        "seconds": round(span, 2),
        "throughput_per_s": round(len(ok) / span, 1) if span else 0.0,
        "latency_ms": latency_ms([result["latency"][i] for i in ok]),
        "loadgen_cpu_seconds": round(result["cpu_seconds"], 2),
    }


def ratio(value: float | None, baseline: float | None) -> float | None:
    if value is None or not baseline:
        return None
    return round(value / baseline, 3)
