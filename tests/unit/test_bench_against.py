"""The comparison of two commits' CPU per cancellation: pairs in turn, each ratio to the base run before it."""

from __future__ import annotations

from typing import Any

import pytest

from bench.against import PARTS, markdown, summarise


def run(number: int, side: str, total: float) -> dict[str, Any]:
    each = total / len(PARTS)
    return {
        "round": number,
        "side": side,
        "commit": {"base": "5f986b9", "head": "abc1234"}[side],
        "cpu_ms_per_event": dict.fromkeys(PARTS, each),
        "total_ms": total,
        "all_open_after_s": 3.5,
        "other_work_ms": 3.0,
    }


def test_each_head_run_is_judged_against_the_base_run_of_its_own_round() -> None:
    runs = [run(1, "base", 14.75), run(1, "head", 8.50), run(2, "base", 14.51), run(2, "head", 8.57)]
    assert summarise(runs) == {"ratios": [0.576, 0.591], "mean_ratio": 0.583}


def test_the_report_shows_every_run_and_the_ratios_against_half() -> None:
    runs = [run(1, "base", 10.0), run(1, "head", 5.0)]
    figures = {
        "base_ref": "5f986b9",
        "base": "5f986b9",
        "head": "abc1234",
        "runs": 1,
        "scale": "short",
        "started_at": "2026-12-01T21:00:00Z",
        "runs_measured": runs,
        "summary": summarise(runs),
    }
    text = markdown(figures)
    assert "| 1 | base `5f986b9` | 2.00 | 2.00 | 2.00 | 2.00 | 2.00 | **10.00** |" in text
    assert "| 1 | head `abc1234` | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | **5.00** |" in text
    assert "pair by pair: 0.50 (mean 0.50; half is 0.50)" in text


def test_runs_missing_their_pair_are_refused() -> None:
    with pytest.raises(ValueError):
        summarise([run(1, "base", 10.0), run(1, "head", 5.0), run(2, "base", 9.0)])
