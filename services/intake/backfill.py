"""``brink reconcile --since DATE [--source stripe|chargebee]``: after an outage, list what the billing systems sent
since a date and record what intake missed, through the same path as a webhook."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from services.intake.reconciler import Summary, reconcile_source
from services.intake.repository import PortableDeliveries
from services.intake.settings import IntakeSettings
from shared.billing.base import BillingAuthError, BillingError
from shared.billing.connect import billing_connections
from shared.db import make_engine, make_sessionmaker, utcnow
from shared.logs import configure_logging
from shared.settings import load_settings

SOURCES = ("stripe", "chargebee")
# How long each billing system keeps events listable: a backfill from earlier would silently miss some.
LISTABLE_DAYS = {"stripe": 30}


def parse_since(value: str) -> datetime:
    """A date (midnight UTC) or an ISO date-time (UTC unless it names its zone)."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (2026-11-28) or date-time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brink reconcile", description=__doc__)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", required=True, type=parse_since, help="a date (UTC) or ISO date-time")
    parser.add_argument("--source", choices=SOURCES, help="one billing system (default: every configured one)")


def refusal(since: datetime, sources: Sequence[str], configured: Sequence[str], now: datetime) -> str | None:
    """Why the backfill cannot do what was asked, in one line; None when it can."""
    if since > now:
        return f"--since {since.isoformat()} is in the future"
    missing = [source for source in sources if source not in configured]
    if missing:
        settings = {"stripe": "BRINK_STRIPE_API_KEY", "chargebee": "BRINK_CHARGEBEE_SITE and BRINK_CHARGEBEE_API_KEY"}
        return f"{missing[0]} is not connected: set {settings[missing[0]]}"
    for source in sources:
        days = LISTABLE_DAYS.get(source)
        if days is not None and since < now - timedelta(days=days):
            return f"{source} keeps events listable for {days} days; --since must be after {now - timedelta(days=days):%Y-%m-%d %H:%M} UTC"
    return None


def describe(summary: Summary) -> str:
    line = (
        f"{summary.source}: {summary.read} events read, {summary.already_known} already known, "
        f"{summary.recovered} recovered"
    )
    extra = [
        f"{count} {what}"
        for count, what in (
            (summary.superseded, "superseded by newer events"),
            (summary.ignored, "ignored"),
            (summary.unreadable, "unreadable"),
        )
        if count
    ]
    return line + (f" ({', '.join(extra)})" if extra else "")


async def backfill(settings: IntakeSettings, *, since: datetime, source: str | None, console: Console) -> int:
    """List each chosen source since ``since`` and record every event; the exit status."""
    connections = billing_connections(settings, purpose="the backfill")
    sources = [source] if source else list(connections)
    if not sources:
        console.print(
            "brink: no billing system is connected: set BRINK_STRIPE_API_KEY or BRINK_CHARGEBEE_SITE and BRINK_CHARGEBEE_API_KEY"
        )
        return 2
    problem = refusal(since, sources, list(connections), utcnow())
    if problem:
        console.print(f"brink: {problem}")
        return 2
    engine = make_engine(settings.database_url.get_secret_value())
    deliveries = PortableDeliveries(make_sessionmaker(engine))
    status = 0
    try:
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True
        ) as progress:
            for name in sources:
                task = progress.add_task(f"{name}: listing events since {since:%Y-%m-%d %H:%M} UTC")

                async def show(summary: Summary, task: TaskID = task) -> None:
                    progress.update(task, description=describe(summary))

                try:
                    summary = await reconcile_source(
                        connections[name], deliveries=deliveries, since=since, on_event=show
                    )
                except BillingAuthError as refused:
                    console.print(f"brink: {name} refused the key in {refused.setting} ({refused.status})")
                    status = 1
                    continue
                except BillingError as failed:
                    console.print(f"brink: {name} failed after every retry: {failed}; run the same command again")
                    status = 1
                    continue
                progress.remove_task(task)
                console.print(describe(summary))
    finally:
        await engine.dispose()
        for connection in connections.values():
            await connection.close()
    if status == 0:
        console.print("Recovered events are in intake's outbox; a running intake publishes them.")
    return status


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    settings = load_settings(IntakeSettings)
    # Progress and the summary go to the terminal; each recovered event is counted there rather than logged.
    configure_logging(service="intake-backfill", level="ERROR", fmt=settings.log_format)
    console = Console(highlight=False, soft_wrap=True)
    sys.exit(asyncio.run(backfill(settings, since=args.since, source=args.source, console=console)))


if __name__ == "__main__":
    main()
