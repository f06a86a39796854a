"""``brink reconcile --since DATE``: the backfill after an outage, run as the operator runs it."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from services.intake.models import WebhookEvent
from services.intake.repository import PortableDeliveries
from services.intake.service import record_vendor_event
from shared.db import make_engine, make_sessionmaker
from shared.migrate import upgrade
from tests.billing_helpers import CHARGEBEE_KEY, CHARGEBEE_SITE, fake_chargebee

BRINK = Path(sys.executable).parent / "brink"


async def brink_reconcile(*args: str, **settings: str) -> tuple[int, str]:
    """Run the command with only these settings; its exit status and everything it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRINK_")}
    env.update({f"BRINK_{name.upper()}": value for name, value in settings.items()})
    process = await asyncio.create_subprocess_exec(
        str(BRINK),
        "reconcile",
        *args,
        env={**env, "BRINK_API_TOKENS": "t0k3n-abcdefghijklmnop", "BRINK_LOG_FORMAT": "console"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_the_backfill_records_what_intake_missed_and_says_what_it_found(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'brink.db'}"
    await asyncio.to_thread(upgrade, database_url)
    async with fake_chargebee() as server:
        outage_start = datetime.now(UTC) - timedelta(hours=2)
        known = server.cancel()
        missed = [server.cancel(), server.cancel(scheduled=True)]
        server.record("subscription_created")
        engine = make_engine(database_url)
        try:
            # The webhook for one of them did arrive.
            await record_vendor_event(
                PortableDeliveries(make_sessionmaker(engine)),
                source="chargebee",
                event=known,
                correlation_id="webhook",
                received_via="webhook",
            )
            status, output = await brink_reconcile(
                "--since",
                outage_start.strftime("%Y-%m-%dT%H:%M"),
                "--source",
                "chargebee",
                database_url=database_url,
                chargebee_site=CHARGEBEE_SITE,
                chargebee_api_key=CHARGEBEE_KEY,
                chargebee_api_base=server.url,
            )
            async with make_sessionmaker(engine)() as session:
                rows = (await session.scalars(select(WebhookEvent))).all()
        finally:
            await engine.dispose()
    assert status == 0, output
    assert "chargebee: 3 events read, 1 already known, 2 recovered" in output
    via = {row.external_id: row.received_via for row in rows}
    assert via == {known["id"]: "webhook", **{event["id"]: "reconciliation" for event in missed}}
    assert CHARGEBEE_KEY not in output


async def test_the_backfill_refuses_what_it_cannot_do_in_one_line(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'brink.db'}"
    not_connected = await brink_reconcile("--since", "2026-11-30", "--source", "stripe", database_url=database_url)
    assert not_connected == (2, "brink: stripe is not connected: set BRINK_STRIPE_API_KEY\n")
    too_old = (datetime.now(UTC) - timedelta(days=45)).strftime("%Y-%m-%d")
    status, output = await brink_reconcile(
        "--since", too_old, database_url=database_url, stripe_api_key="rk_test_" + "4" * 24
    )
    assert status == 2 and output.startswith("brink: stripe keeps events listable for 30 days; --since must be after")
    assert len(output.strip().splitlines()) == 1
    status, output = await brink_reconcile("--since", "last tuesday", database_url=database_url)
    assert status == 2 and "is not a date" in output
