"""The benchmark's own parts: its webhooks are ones intake accepts, and its figures are computed honestly."""

from __future__ import annotations

import json

from bench.loadgen import Requests
from bench.report import derive, why
from bench.stats import percentile, summarise_load
from services.intake.stripe_mapping import map_stripe_event
from shared.signing import verify_stripe_signature

SECRET = "whsec_bench_unit"


def split(request: bytes) -> tuple[dict[str, str], bytes]:
    head, body = request.split(b"\r\n\r\n", 1)
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return headers, body


def test_each_generated_webhook_is_distinct_correctly_signed_and_a_cancellation() -> None:
    requests = Requests(secret=SECRET, tag="t")
    seen = set()
    for index in (0, 1, 99_999):
        headers, body = split(requests.build(index))
        assert int(headers["Content-Length"]) == len(body)
        verify_stripe_signature(headers["Stripe-Signature"], body, [SECRET])
        event = json.loads(body)
        assert event["type"] == "customer.subscription.deleted"
        assert map_stripe_event(event).cancellation_id == requests.cancellation_id(index)
        seen.add(event["id"])
    assert len(seen) == 3


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) is None


def test_throughput_counts_only_2xx_over_the_time_from_first_send_to_last_answer() -> None:
    result = {
        "status": [200, 200, 503, 200],
        "latency": [0.1, 0.1, 0.1, 0.1],
        "done_wall": [10.1, 10.6, 10.8, 11.1],
        "errors": 1,
        "cpu_seconds": 0.5,
    }
    summary = summarise_load(result)
    assert summary["accepted_2xx"] == 3
    assert summary["requests"] == 5
    assert summary["throughput_per_s"] == round(3 / 1.1, 1)


def test_targets_are_judged_against_the_lower_ceiling_and_the_issue_limits() -> None:
    figures = {
        "scale": {"fixed_rate": 300, "e2e_rate": 200},
        "phases": {
            "http_ceiling": {"throughput_per_s": 1000.0},
            "storage_ceiling": {"throughput_per_s": 800.0, "latency_ms": {"p50": 5.0}},
            "broker_hop": {"latency_ms": {"p50": 2.0}},
            "intake_isolated_saturation": {"throughput_per_s": 300.0},
            "intake_fixed_rate": {"latency_ms": {"p50": 5.0, "p95": 10.0, "p99": 20.0}},
            "end_to_end": {"to_visible_ms": {"p50": 300.0, "p99": 1500.0}},
            "burst": {"events": 10_000, "all_open_after_s": 45.0},
        },
        "peak_rss_mb": {"intake": 120.0},
        "bare_http_peak_rss_mb": 60.0,
    }
    rows = {row["figure"]: row for row in derive(figures)["rows"]}
    intake = rows["intake saturation, intake alone (consumers paused)"]
    assert (intake["baseline"], intake["ratio"], intake["met"]) == (800.0, 0.375, False)
    assert rows["intake p99 to 2xx at 300/s offered"]["met"] is True
    assert rows["end to end p99, 2xx to case visible, 200/s"]["met"] is False
    assert rows["end to end p99, 2xx to case visible, 200/s"]["baseline"] == 19.0
    assert rows["burst of 10000: every case open after"]["met"] is True
    assert rows["intake peak memory (VmHWM, summed over its processes)"]["ratio"] == 2.0


def test_a_missed_intake_ratio_is_explained_by_the_machine_cpu_each_request_costs() -> None:
    figures = {
        "phases": {
            "storage_ceiling": {"cpu_ms_per_commit": {"asyncpg_loop": 0.15, "postgres": 0.30}},
            "intake_isolated_saturation": {
                "accepted_2xx": 1000,
                "cpu_ms_per_2xx": {"intake": 0.6},
                "cpu_cores": {
                    "intake": 0.6,
                    "postgres": 0.3,
                    "rabbitmq": 0.15,
                    "loadgen": 0.05,
                    "machine": 1.1,
                    "others": 0.0,
                    "cores": 2,
                    "wall_s": 1.0,
                },
                "intake_schedule": {"running": 0.6, "waiting_for_core": 0.15, "idle": 0.25},
            },
        },
    }
    row = {"figure": "intake saturation, intake alone (consumers paused)", "met": False}

    reason = why(figures, row)

    assert "cost the machine 1.10 ms of CPU (intake 0.60, postgres 0.30, rabbitmq 0.15, loadgen 0.05)" in reason
    assert "a ceiling commit costs 0.45 ms (asyncpg_loop 0.15, postgres 0.30)" in reason
    assert "bounds the ratio near 0.41" in reason
    assert "running 60% of the phase, waiting for a core 15% (both held by other processes) and idle 25%" in reason


def test_intake_is_judged_against_the_hand_written_peer_measured_in_the_same_run() -> None:
    figures = {
        "scale": {"fixed_rate": 300, "e2e_rate": 200},
        "phases": {
            "storage_ceiling": {"throughput_per_s": 1000.0},
            "intake_isolated_saturation": {"throughput_per_s": 750.0},
            "peer_alone": {"throughput_per_s": 400.0},
            "intake_with_backlog": {"throughput_per_s": 300.0, "latency_ms": {"p50": 20.0, "p99": 90.0}},
            "peer_with_backlog": {"throughput_per_s": 320.0, "latency_ms": {"p50": 30.0, "p99": 60.0}},
            "burst": {"events": 10_000, "cpu_ms_per_event": {"intake": 0.4, "diagnosis": 1.0, "outreach": 1.0}},
        },
    }
    rows = {row["figure"]: row for row in derive(figures)["rows"]}

    alone = rows["intake saturation, intake alone, against the hand-written peer alone"]
    assert (alone["ratio"], alone["met"]) == (1.875, False)  # under 2x the peer
    assert rows["intake saturation, intake alone (consumers paused)"]["met"] is True  # 0.75 of the ceiling
    busy = rows["intake saturation while diagnosis and outreach work through a backlog"]
    assert (busy["baseline"], busy["met"]) == (320.0, False)
    assert rows["intake p99 to 2xx while the consumers work through a backlog"]["ratio"] == 1.5
    cpu = rows["CPU per cancellation through the pipeline (burst)"]
    assert (cpu["value"], cpu["met"]) == (2.4, True)
