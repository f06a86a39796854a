"""``python -m bench.against REF``: CPU per cancellation of this checkout's commit against another's, alternated.

The efficiency target is relative (half the CPU per cancellation of the code the issue was filed on), but a figure
in milliseconds belongs to its machine: the same code measured 5.25 ms in one full run and 14.5 ms in a short run on
a machine 2.3 times slower by the ceilings. So both codes are measured here, on this machine, in turns: each from a
clone of its own commit with its own virtualenv, benchmark harness and schema (``make install``, then
``python -m bench``), base first. Only committed code is measured: HEAD, not the working tree.

Results: ``bench/results/against-<base>.{json,md}``: every run's CPU per cancellation in the burst, by part, and
each pair's ratio of HEAD to the base.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS = REPOSITORY / "bench" / "results"
PARTS = ("intake", "diagnosis", "outreach", "postgres", "rabbitmq")
# The commit issue #24 was filed on: the code of the last full run before it (5.25 ms per cancellation, 2026-11-25).
ISSUE_BASE = "5f986b9"


def git(*args: str, cwd: Path = REPOSITORY) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def prepare(side: str, commit: str, root: Path) -> Path:
    """A clone of ``commit`` with its own virtualenv, as its own Makefile installs it."""
    checkout = root / side
    git("clone", "--quiet", "--no-checkout", str(REPOSITORY), str(checkout))
    git("checkout", "--quiet", commit, cwd=checkout)
    log = root / f"{side}-install.log"
    with log.open("wb") as output:
        for command in (
            ["make", "install"],
            [str(checkout / ".venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", "-e", ".[dev,bench]"],
        ):
            if subprocess.run(command, check=False, cwd=checkout, stdout=output, stderr=subprocess.STDOUT).returncode:
                raise SystemExit(f"against: installing {side} ({commit}) failed; see {log}")
    return checkout


def burst(checkout: Path, scale: str, log: Path) -> dict[str, Any]:
    """One whole benchmark run of that checkout; its burst's CPU per cancellation by part."""
    with log.open("wb") as output:
        code = subprocess.run(
            [str(checkout / ".venv" / "bin" / "python"), "-m", "bench", "--scale", scale],
            check=False,
            cwd=checkout,
            stdout=output,
            stderr=subprocess.STDOUT,
        ).returncode
    if code:
        raise SystemExit(f"against: the benchmark of {checkout.name} failed; see {log}")
    figures = json.loads((checkout / "bench" / "results" / f"{scale}.json").read_text())
    phase = figures["phases"]["burst"]
    cpu = {part: phase["cpu_ms_per_event"][part] for part in PARTS}
    return {
        "cpu_ms_per_event": cpu,
        "total_ms": round(sum(cpu.values()), 2),
        "all_open_after_s": phase.get("all_open_after_s"),
        "other_work_ms": phase["cpu_ms_per_event"].get("others"),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each pair's ratio (HEAD's total over the base's run just before it) and their mean."""
    base = [run for run in runs if run["side"] == "base"]
    head = [run for run in runs if run["side"] == "head"]
    ratios = [round(h["total_ms"] / b["total_ms"], 3) for b, h in zip(base, head, strict=True)]
    return {"ratios": ratios, "mean_ratio": round(mean(ratios), 3) if ratios else None}


def markdown(figures: dict[str, Any]) -> str:
    lines = [
        f"# CPU per cancellation: {figures['head']} against {figures['base']}, {figures['started_at']}",
        "",
        f"`python -m bench.against {figures['base_ref']} --runs {figures['runs']} --scale {figures['scale']}`: "
        "the burst phase of a whole benchmark run of each commit, alternated on this machine, base first. "
        "CPU in ms per cancellation.",
        "",
        "| run | code | intake | diagnosis | outreach | PostgreSQL | RabbitMQ | total | all open after | other work |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in figures["runs_measured"]:
        cpu = run["cpu_ms_per_event"]
        lines.append(
            f"| {run['round']} | {run['side']} `{run['commit']}` | "
            + " | ".join(f"{cpu[part]:.2f}" for part in PARTS)
            + f" | **{run['total_ms']:.2f}** | {run['all_open_after_s']} s | {run['other_work_ms']} |"
        )
    summary = figures["summary"]
    lines += [
        "",
        f"HEAD against the base, pair by pair: {', '.join(f'{ratio:.2f}' for ratio in summary['ratios'])} "
        f"(mean {summary['mean_ratio']:.2f}; half is 0.50).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", nargs="?", default=ISSUE_BASE, help=f"the commit to compare with ({ISSUE_BASE})")
    parser.add_argument("--runs", type=int, default=2, help="pairs of runs, alternated")
    parser.add_argument("--scale", choices=("short", "full"), default="short")
    parser.add_argument("--keep", action="store_true", help="keep the clones, their logs and virtualenvs")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        commits = {"base": git("rev-parse", "--short", args.base), "head": git("rev-parse", "--short", "HEAD")}
    except subprocess.CalledProcessError as error:
        parser.error(f"not a commit here: {args.base} ({error.stderr.strip()})")
    root = Path(tempfile.mkdtemp(prefix="brink-against-"))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        checkouts = {side: prepare(side, commit, root) for side, commit in commits.items()}
        runs = []
        for number in range(1, args.runs + 1):
            for side in ("base", "head"):
                run = burst(checkouts[side], args.scale, root / f"{side}-{number}.log")
                runs.append({"round": number, "side": side, "commit": commits[side], **run})
                print(f"against: {side} {commits[side]} run {number}: {run['total_ms']} ms per cancellation")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    figures = {
        "base_ref": args.base,
        "base": commits["base"],
        "head": commits["head"],
        "runs": args.runs,
        "scale": args.scale,
        "started_at": started,
        "runs_measured": runs,
        "summary": summarise(runs),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"against-{commits['base']}"
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=1))
    (RESULTS / f"{name}.md").write_text(markdown(figures))
    print(f"against: HEAD / base {figures['summary']['ratios']}; see {RESULTS / (name + '.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
