"""py-spy on a running service, and a summary of where its samples fall."""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# Which layer a frame belongs to, by the first matching fragment of its file path.
LAYERS = (
    ("sqlalchemy", "SQLAlchemy (ORM/Core, pool)"),
    ("asyncpg", "asyncpg driver"),
    ("pydantic", "pydantic (events, settings, responses)"),
    ("fastapi", "FastAPI routing/dependencies"),
    ("starlette", "Starlette middleware/requests"),
    ("uvicorn", "uvicorn HTTP protocol"),
    ("httptools", "uvicorn HTTP protocol"),
    ("aio_pika", "aio-pika/aiormq (relay publish)"),
    ("aiormq", "aio-pika/aiormq (relay publish)"),
    ("pamqp", "aio-pika/aiormq (relay publish)"),
    ("prometheus_client", "prometheus metrics"),
    ("structlog", "logging"),
    ("logging", "logging"),
    ("json", "json"),
    ("hmac", "signature (hmac)"),
    ("/shared/", "brink shared/"),
    ("/services/", "brink services/"),
    ("asyncio", "asyncio event loop"),
    ("uvloop", "asyncio event loop"),
)


def py_spy() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


async def start(pid: int, seconds: float, output: Path) -> asyncio.subprocess.Process | None:
    """Sample ``pid`` at 200 Hz for ``seconds`` into collapsed stacks; None when py-spy is missing."""
    binary = py_spy()
    if binary is None:
        return None
    recorder = await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(pid),
        "--duration",
        str(int(seconds)),
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(output),
        "--nonblocking",
        "--subprocesses",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    await asyncio.sleep(0.5)  # let it attach before the load starts
    return recorder


def layer_of(frame: str) -> str:
    for fragment, layer in LAYERS:
        if fragment in frame:
            return layer
    return "other"


def function_of(frame: str) -> str:
    """``name (path/to/file.py:12)`` -> ``name (file.py)``: lines differ per call site, functions do not."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1].rstrip(")")
    return f"{name} ({file})"


def summarise(collapsed: Path, target: Path, title: str) -> dict[str, Any]:
    """Self time by layer, and inclusive/self time of the top functions; also written as text to ``target``."""
    if not collapsed.exists():
        return {"error": "py-spy wrote no samples (is ptrace allowed?)"}
    total = 0
    self_layer: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    self_function: Counter[str] = Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        self_layer[layer_of(frames[-1])] += count
        self_function[function_of(frames[-1])] += count
        for function in {function_of(frame) for frame in frames}:
            inclusive[function] += count
    share = (lambda n: round(100 * n / total, 1)) if total else (lambda n: 0.0)
    summary = {
        "samples": total,
        "self_by_layer_pct": {layer: share(n) for layer, n in self_layer.most_common()},
        "top_inclusive_pct": {name: share(n) for name, n in inclusive.most_common(30)},
        "top_self_pct": {name: share(n) for name, n in self_function.most_common(20)},
    }
    lines = [f"py-spy, {title}: {total} samples (busy stacks only, idle excluded)", ""]
    for title, key in (
        ("Self time by layer", "self_by_layer_pct"),
        ("Top functions, inclusive", "top_inclusive_pct"),
        ("Top functions, self", "top_self_pct"),
    ):
        lines += [title, *(f"  {pct:5.1f}%  {name}" for name, pct in summary[key].items()), ""]
    target.with_suffix(".txt").write_text("\n".join(lines))
    # The stacks themselves, for a flame graph (e.g. flamegraph.pl or speedscope.app load this format).
    target.with_suffix(".collapsed").write_text(collapsed.read_text())
    return summary
