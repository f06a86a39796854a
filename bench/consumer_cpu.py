"""CPU per message of one consumer, in process: no broker, no HTTP, no relay.

    python -m bench.consumer_cpu --consumer outreach|diagnosis --messages 640 --batch 32 [--runs 5]
        [--database postgres|sqlite] [--history 1000000 [--no-analyze]] [--profile out.prof]

Each run builds the service as it starts (its app, settings, playbooks or rules) on a fresh database, then hands
its consumer batches of messages made from the event contracts (diagnoses for outreach, cancellations for
diagnosis), through the batch handler the consumer calls for messages that arrive together
(``Consumer._handle_together``: the handled rows, every handler, one commit). Printed per message: the Python
process's CPU time, and the CPU of the PostgreSQL backends its connections use (read from /proc by their
``pg_backend_pid()``, so PostgreSQL must run on this machine). A warm-up batch first is not counted: a running
consumer has compiled its statements long before. ``--history N`` first gives the service's domain tables (cases,
tasks, diagnoses and the like; not the handled-message and outbox tables retention keeps small) the rows of about
N earlier messages, copies of the warm-up's under new keys, so the figures show what a consumer costs once Brink
has run for a while rather than on empty tables (PostgreSQL only); they are ANALYZEd as autovacuum would, unless
``--no-analyze`` leaves them as a server without autovacuum has them. ``--profile`` writes a cProfile (in CPU time) of the counted
batches and prints its top functions; profiling inflates the figures of that run.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast, get_args

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.consumer import Arrival, Consumer
from shared.events import (
    CancellationReceived,
    DiagnosisCompleted,
    Envelope,
    Evidence,
    Hypothesis,
    Money,
    Payload,
    PlanLine,
    RootCause,
    Verdict,
)
from shared.logs import configure_logging
from shared.migrate import upgrade
from shared.runtime import freeze_startup_objects
from tests.conftest import new_postgres_database

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROOT_CAUSES = get_args(RootCause)
FEEDBACK = ("too_expensive", "missing_features", "switched_service", "unused", "customer_service", "too_complex", None)
COMMENTS = (
    "We never finished setting it up, nobody had time to roll it out to the team.",
    "Our new CFO is cutting every tool that is not core.",
    "The integration with our CRM kept breaking and support took days to answer.",
    "Our champion left and nobody else uses it.",
    "Moving to a competitor that bundles this with our helpdesk.",
)


def diagnosis_of(index: int, rng: random.Random, now: datetime) -> DiagnosisCompleted:
    """A diagnosis as the diagnosis service sends it: most pursued, some to discover or let go; most scheduled to
    end within the month, some already ended (a subscription deleted); one customer in four on another plan."""
    root_cause = ROOT_CAUSES[index % len(ROOT_CAUSES)]
    decision = rng.choices(("pursue", "discover", "move_on"), weights=(8, 1, 1))[0]
    customer = f"cus_{index:08d}{rng.randrange(10**6):06d}"
    ended = rng.random() < 0.3
    second = ROOT_CAUSES[(index + 3) % len(ROOT_CAUSES)]
    return DiagnosisCompleted(
        diagnosis_id=str(uuid.uuid4()),
        diagnosis_version=1,
        cancellation_id=f"stripe:sub_{index:08d}{rng.randrange(10**6):06d}",
        account_id=f"stripe:{customer}",
        customer_id=customer,
        customer_name=f"Customer {index} GmbH",
        customer_email=f"billing@customer{index}.example",
        source="stripe",
        mrr=Money(amount_minor=rng.choice((4_900, 29_000, 49_000, 150_000)), currency="usd"),
        effective_at=now if ended else now + timedelta(days=rng.randrange(1, 30)),
        billing_reason="cancellation_requested",
        stated_reason=rng.choice(FEEDBACK),
        comment=rng.choice(COMMENTS) if rng.random() < 0.3 else None,
        symptom="unused",
        root_cause=root_cause,
        hypotheses=[
            Hypothesis(
                root_cause=root_cause,
                confidence=0.7,
                evidence=[Evidence(signal="usage", detail="logins down 80% over 60 days", weight=0.5)],
            ),
            Hypothesis(root_cause=second, confidence=0.2, evidence=[]),
        ],
        verdict=Verdict(decision=decision, reason="worth a call", priority=rng.randrange(20, 95)),
        recommended_playbook=root_cause if decision == "pursue" else decision,
        state_version=1_700_000_000 + index,
        initiated_by="customer",
    )


def cancellation_of(index: int, rng: random.Random, now: datetime) -> CancellationReceived:
    """A Stripe cancellation as intake maps it: a reason code, a comment from one customer in three."""
    customer = f"cus_{index:08d}{rng.randrange(10**6):06d}"
    subscription = f"sub_{index:08d}{rng.randrange(10**6):06d}"
    mrr = rng.choice((4_900, 29_000, 49_000, 150_000))
    return CancellationReceived(
        cancellation_id=f"stripe:{subscription}",
        account_id=f"stripe:{customer}",
        source="stripe",
        source_event_id=f"evt_{uuid.uuid4().hex[:24]}",
        source_event_type="customer.subscription.updated",
        customer_id=customer,
        subscription_id=subscription,
        customer_email=f"billing@customer{index}.example",
        customer_name=f"Customer {index} GmbH",
        plans=[PlanLine(plan_id="price_team", name="Team", quantity=rng.randrange(1, 40), mrr_minor=mrr)],
        mrr=Money(amount_minor=mrr, currency="usd"),
        billing_reason="cancellation_requested",
        feedback=rng.choice(FEEDBACK),
        comment=rng.choice(COMMENTS) if rng.random() < 0.33 else None,
        initiated_by="customer",
        scheduled=True,
        effective_at=now + timedelta(days=rng.randrange(1, 30)),
        state_version=1_700_000_000 + index,
    )


@dataclass(frozen=True)
class Kind:
    """How to build one consumer and its messages."""

    queue: str
    source: str
    message: Callable[[int, random.Random, datetime], Payload]


KINDS = {
    "outreach": Kind(queue="outreach.diagnoses", source="diagnosis", message=diagnosis_of),
    "diagnosis": Kind(queue="diagnosis.cancellations", source="intake", message=cancellation_of),
}


def build_consumer(name: str, database_url: str) -> tuple[Consumer, AsyncEngine]:
    """The service's consumer as its app wires it (policy, rules, handlers), and its engine."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "api_tokens": [f"bench-{uuid.uuid4().hex}"],
        "log_level": "WARNING",
    }
    if name == "outreach":
        from services.outreach.app import build_app as build_outreach
        from services.outreach.settings import OutreachSettings

        app = build_outreach(OutreachSettings(**values))
    else:
        from services.diagnosis.app import build_app as build_diagnosis
        from services.diagnosis.settings import DiagnosisSettings

        app = build_diagnosis(DiagnosisSettings(**values))
    runtime = app.state.runtime
    [consumer] = [consumer for consumer in runtime.consumers if consumer.spec.name == KINDS[name].queue]
    return consumer, runtime.engine


def arrivals(kind: Kind, first: int, count: int, rng: random.Random) -> list[Arrival]:
    """Messages as the consumer decodes them off the wire; none is ever acknowledged, so no delivery is needed."""
    now = datetime.now(UTC)
    made = []
    for index in range(first, first + count):
        body = Envelope.wrap(kind.message(index, rng, now), correlation_id=f"bench-{index}", source=kind.source)
        envelope = Envelope.from_bytes(body.to_bytes())
        made.append(Arrival(message=cast(Any, None), envelope=envelope, payload=envelope.payload(), started=0.0))
    return made


def watch_backends(engine: AsyncEngine) -> set[int]:
    """The pids of the PostgreSQL backends serving the engine's connections, filled in as they connect."""
    pids: set[int] = set()
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine.sync_engine, "connect")
        def _remember(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT pg_backend_pid()")
            pids.add(cursor.fetchone()[0])
            cursor.close()

    return pids


def backend_seconds(pids: set[int]) -> dict[int, float]:
    """User and system CPU of each backend so far (fields 14 and 15 of /proc/<pid>/stat)."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return seconds


@asynccontextmanager
async def fresh_database(kind: str) -> AsyncIterator[str]:
    """A migrated database of this run's own (its SQLAlchemy URL), dropped afterwards."""
    if kind == "postgres":
        async with new_postgres_database("brink_consumer_cpu") as url:
            yield url
        return
    with tempfile.TemporaryDirectory(prefix="brink-consumer-cpu-") as folder:
        url = f"sqlite+aiosqlite:///{folder}/brink.db"
        await asyncio.to_thread(upgrade, url)
        yield url


# Tables that do not grow with the customers: retention keeps them small, or they hold people and settings.
NOT_HISTORY = ("_handled_messages", "_outbox", "_people", "_desk_sessions", "_sign_in_failures", "_cursors", "_leases")


async def add_history(engine: AsyncEngine, service: str, messages: int, batch: int, *, analyze: bool = True) -> None:
    """The service's domain tables as after about ``messages`` earlier messages: every row the warm-up wrote, copied
    under keys made from its own and the copy's number, so a case's tasks still name that copy of the case and
    every key lands where a new one would (the keys are random, as the services' are)."""
    copies = max(1, messages // batch)
    async with engine.begin() as connection:
        # Copies of children and parents go in together, in whatever order: the foreign keys hold by construction.
        await connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        tables = (
            await connection.exec_driver_sql(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name LIKE $1",
                (f"{service}_%",),
            )
        ).scalars()
        for table in [name for name in tables if not name.endswith(NOT_HISTORY)]:
            columns = (
                await connection.exec_driver_sql(
                    "SELECT column_name, data_type, column_default FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
                    (table,),
                )
            ).all()
            names, values = [], []
            for name, data_type, default in columns:
                if (default or "").startswith("nextval("):
                    continue  # a serial key: the sequence numbers the copies
                names.append(f'"{name}"')
                is_key = (name == "id" or name.endswith("_id")) and data_type == "character varying"
                values.append(f"left(md5(\"{name}\" || ':' || copy), 36)" if is_key else f'"{name}"')
            await connection.exec_driver_sql(
                f'INSERT INTO "{table}" ({", ".join(names)}) SELECT {", ".join(values)} '
                f'FROM "{table}", generate_series(1, {copies}) AS copy'
            )
        if analyze:
            await connection.exec_driver_sql("ANALYZE")


@dataclass(frozen=True)
class Figures:
    python_ms: float
    postgres_ms: float | None


async def run_once(args: argparse.Namespace, seed: int) -> Figures:
    kind = KINDS[args.consumer]
    rng = random.Random(seed)
    async with fresh_database(args.database) as url:
        consumer, engine = build_consumer(args.consumer, url)
        backends = watch_backends(engine)
        try:
            warm_up = arrivals(kind, 0, args.batch, rng)
            counted = arrivals(kind, args.batch, args.messages, rng)
            batches = [counted[start : start + args.batch] for start in range(0, len(counted), args.batch)]
            freeze_startup_objects()  # as a serving process does once it is built
            await consumer._handle_together(warm_up)
            if args.history:
                await add_history(engine, args.consumer, args.history, args.batch, analyze=not args.no_analyze)
                await consumer._handle_together(arrivals(kind, args.batch + args.messages, args.batch, rng))
            # CPU time, as measured here: time spent waiting for PostgreSQL is not where this process spends its CPU.
            profile = cProfile.Profile(time.process_time) if args.profile else None
            backends_before, started = backend_seconds(backends), time.process_time()
            if profile is not None:
                profile.enable()
            outcomes = [outcome for batch in batches for outcome in await consumer._handle_together(batch)]
            if profile is not None:
                profile.disable()
            python_seconds, backends_after = time.process_time() - started, backend_seconds(backends)
        finally:
            await engine.dispose()
    if outcomes.count("handled") != len(counted):
        raise SystemExit(f"bench: only {outcomes.count('handled')} of {len(counted)} messages were handled")
    if profile is not None:
        profile.dump_stats(args.profile)
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    postgres_ms = None
    if backends:
        if set(backends_after) != backends:
            print("bench: a backend ended during the run; its CPU is not counted", file=sys.stderr)
        postgres_seconds = sum(after - backends_before.get(pid, 0.0) for pid, after in backends_after.items())
        postgres_ms = 1000 * postgres_seconds / len(counted)
    return Figures(python_ms=1000 * python_seconds / len(counted), postgres_ms=postgres_ms)


def per_message(python_ms: float, postgres_ms: float | None) -> str:
    backends = "" if postgres_ms is None else f", PostgreSQL backends {postgres_ms:.2f} ms"
    return f"Python {python_ms:.2f} ms{backends} CPU per message"


async def main_async(args: argparse.Namespace) -> None:
    configure_logging(service=f"bench-{args.consumer}", level="WARNING")
    runs = []
    for number in range(args.runs):
        figures = await run_once(args, seed=number)
        runs.append(figures)
        print(
            f"run {number + 1}: {args.consumer}, {args.messages} messages in batches of {args.batch} on "
            f"{f'{args.history:,} messages of history in ' if args.history else ''}"
            f"{args.database}: {per_message(figures.python_ms, figures.postgres_ms)}",
            flush=True,
        )
    if args.runs > 1:
        postgres = [run.postgres_ms for run in runs if run.postgres_ms is not None]
        python_ms = statistics.median(run.python_ms for run in runs)
        print(f"median of {args.runs}: {per_message(python_ms, statistics.median(postgres) if postgres else None)}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--consumer", choices=sorted(KINDS), required=True)
    parser.add_argument("--messages", type=int, default=640, help="messages counted (after one warm-up batch)")
    parser.add_argument("--batch", type=int, default=32, help="messages handled in one transaction")
    parser.add_argument("--runs", type=int, default=1, help="runs, each on a fresh database; the median is printed")
    parser.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    parser.add_argument("--history", type=int, default=0, help="earlier messages' rows in the tables first")
    parser.add_argument("--no-analyze", action="store_true", help="leave the history's statistics unmade")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the counted batches here")
    args = parser.parse_args()
    if args.history and args.database != "postgres":
        parser.error("--history fills PostgreSQL tables only")
    if args.history < 0:
        parser.error("--history must be 0 or more")
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
