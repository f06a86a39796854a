"""The machine's own ceilings, each run as its own process: a bare HTTP endpoint and a raw asyncpg commit loop.

``python -m bench.ceilings http PORT`` serves a FastAPI app whose webhook route reads the body and answers
200, on the same uvicorn settings as the services (``shared.runtime.serve``). ``python -m bench.ceilings
storage DSN CONNECTIONS SECONDS OUT`` commits what intake commits per accepted webhook (one inbox row and
one subscription-state row, one outbox row; one transaction) from CONNECTIONS connections at once, with no framework and no ORM.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid
from pathlib import Path

from fastapi import FastAPI, Request

CEILING_TABLES = """
CREATE TABLE IF NOT EXISTS bench_ceiling_webhooks (LIKE intake_webhook_events INCLUDING ALL);
CREATE TABLE IF NOT EXISTS bench_ceiling_states (LIKE intake_subscription_states INCLUDING ALL);
CREATE TABLE IF NOT EXISTS bench_ceiling_outbox (LIKE intake_outbox INCLUDING ALL);
"""

INSERT_STATE = """
INSERT INTO bench_ceiling_states (source, subscription_id, state, state_version, updated_at)
VALUES ('stripe', $1, 'cancelled', 1, now())
ON CONFLICT DO NOTHING RETURNING id
"""

INSERT_WEBHOOK = """
INSERT INTO bench_ceiling_webhooks (source, external_id, event_type, outcome, published_type, correlation_id,
                                    payload, received_at)
VALUES ('stripe', $1, 'customer.subscription.deleted', 'accepted', 'cancellation.received', $2, $3::jsonb, now())
ON CONFLICT DO NOTHING RETURNING id
"""

INSERT_OUTBOX = """
INSERT INTO bench_ceiling_outbox (event_id, event_type, correlation_id, body, created_at)
VALUES ($1, 'cancellation.received', $2, $3, now())
"""


def serve_bare_http(port: int) -> None:
    """A FastAPI app with one POST route that reads the body and answers a small JSON 200."""
    import uvicorn

    app = FastAPI()

    @app.post("/webhooks/stripe")
    async def webhook(request: Request) -> dict[str, str]:
        await request.body()
        return {"outcome": "accepted", "event_id": "evt"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=10
    )


async def storage_loop(dsn: str, connections: int, seconds: float, payload: str) -> dict[str, object]:
    """Commit inbox+outbox pairs from ``connections`` connections for ``seconds``; latencies per commit."""
    import asyncpg

    pool = await asyncpg.create_pool(dsn, min_size=connections, max_size=connections)
    async with pool.acquire() as connection:
        await connection.execute(CEILING_TABLES)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        async with pool.acquire() as connection:
            while time.perf_counter() < deadline:
                key = uuid.uuid4().hex
                started = time.perf_counter()
                async with connection.transaction():
                    await connection.fetchval(INSERT_WEBHOOK, f"evt_{key}", key, payload)
                    await connection.fetchval(INSERT_STATE, f"sub_{key}")
                    await connection.execute(INSERT_OUTBOX, str(uuid.uuid4()), key, payload)
                latencies.append(time.perf_counter() - started)

    backends = []
    for _ in range(connections):
        connection = await pool.acquire()
        backends.append(connection)
    pids = [await connection.fetchval("SELECT pg_backend_pid()") for connection in backends]
    for connection in backends:
        await pool.release(connection)
    before = backends_cpu_seconds(pids)
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    # The backends end with the pool, so their CPU is read here: the harness cannot see them afterwards.
    postgres_cpu = backends_cpu_seconds(pids) - before
    await pool.close()
    return {"commits": len(latencies), "seconds": elapsed, "latency": latencies, "postgres_cpu_seconds": postgres_cpu}


def backends_cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds of PostgreSQL backends on this machine."""
    from bench.observe import process_cpu_seconds

    return sum(process_cpu_seconds(pid) for pid in pids)


def main() -> None:
    """Dispatch ``http`` or ``storage``."""
    if sys.argv[1] == "http":
        serve_bare_http(int(sys.argv[2]))
        return
    dsn, connections, seconds, payload_file, out = sys.argv[2:7]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(storage_loop(dsn, int(connections), float(seconds), Path(payload_file).read_text()))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
