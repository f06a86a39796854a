"""One way in: the group-commit statement and the portable store apply the same rules, row for row."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from services.intake.models import SubscriptionState, WebhookEvent, outbox
from services.intake.postgres_deliveries import PostgresDeliveries, asyncpg_dsn
from services.intake.repository import PortableDeliveries
from services.intake.service import INVOICE_PAID, Deliveries, Delivery, record_event, record_vendor_event
from shared.db import make_engine, make_sessionmaker
from shared.events import CancellationReceived, InvoicePaid
from shared.migrate import upgrade
from tests.conftest import new_postgres_database
from tests.helpers import stripe_event, stripe_subscription
from tests.intake_helpers import chargebee_event, chargebee_subscription

RECEIVED_AT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def arrivals() -> list[tuple[str, Any]]:
    """A day's mix: new, repeated, late and older, ignored, unreadable, reported and reconciled events."""
    stripe_sub = stripe_subscription(subscription_id="sub_same", customer_id="cus_same")
    newer = stripe_event("customer.subscription.deleted", stripe_sub, event_id="evt_newer", created=1_790_000_300)
    older = stripe_event(
        "customer.subscription.updated",
        stripe_subscription(
            subscription_id="sub_same", customer_id="cus_same", status="active", cancel_at=1_790_900_000
        ),
        event_id="evt_older",
        created=1_790_000_100,
        previous_attributes={"cancel_at": None},
    )
    chargebee = chargebee_event(
        "subscription_cancelled",
        chargebee_subscription(subscription_id="cb_sub", customer_id="cb_cus", resource_version=1_790_000_000_000),
        event_id="ev_cb",
    )
    withdrawn = chargebee_event(
        "subscription_reactivated",
        chargebee_subscription(
            subscription_id="cb_sub", customer_id="cb_cus", status="active", resource_version=1_790_000_500_000
        ),
        event_id="ev_cb_back",
    )
    invoice = stripe_event("invoice.created", {"id": "in_1", "customer": "cus_same"}, event_id="evt_ignored")
    dunned = {"id": "in_2", "customer": "cus_dun", "subscription": "sub_dun", "next_payment_attempt": None}
    dunning_over = stripe_event("invoice.payment_failed", dunned, event_id="evt_dunning_over", created=1_790_000_000)
    recovered = stripe_event("invoice.paid", dunned, event_id="evt_recovered", created=1_790_000_060)
    ordinary = stripe_event(
        "invoice.paid", {"id": "in_3", "customer": "cus_same", "subscription": "sub_other"}, event_id="evt_monthly"
    )
    unreadable = stripe_event("customer.subscription.deleted", {"id": "sub_x"}, event_id="evt_unreadable")
    # After cb_sub's withdrawal (version 1_790_000_500_000): a payment made before it, delivered late, is ignored;
    # the first one after it is published as invoice.paid; the next one is ignored.
    paid_before, paid_after, paid_later = (
        _chargebee_payment(f"ev_cb_paid_{n}", version=version)
        for n, version in enumerate((1_790_000_400_000, 1_790_000_600_000, 1_790_000_700_000))
    )
    report = CancellationReceived(
        cancellation_id="api:acme",
        account_id="api:acme",
        source="api",
        source_event_id="key-1",
        source_event_type="cancellation.reported",
        customer_id="acme",
        state_version=1_790_000_000_000,
    )
    return [
        ("stripe", newer),
        ("stripe", newer),  # the vendor retried
        ("stripe", older),  # arrived late: superseded
        ("chargebee", chargebee),
        ("chargebee", withdrawn),
        ("stripe", invoice),
        ("reconciliation:stripe", unreadable),
        ("reconciliation:chargebee", chargebee),  # also found by the reconciler: a duplicate
        ("api", report),
        ("stripe", dunning_over),
        ("stripe", recovered),  # over a payment failure: the customer stays
        ("stripe", ordinary),  # any other payment: ignored, no state written
        ("chargebee", paid_before),
        ("chargebee", paid_after),
        ("chargebee", paid_later),
    ]


def _chargebee_payment(event_id: str, *, version: int) -> dict[str, Any]:
    subscription = chargebee_subscription(
        subscription_id="cb_sub", customer_id="cb_cus", status="active", resource_version=version
    )
    invoice = {"id": f"inv_{event_id}", "subscription_id": "cb_sub", "status": "paid", "resource_version": version}
    return chargebee_event("payment_succeeded", subscription, event_id=event_id, invoice=invoice)


async def record_all(deliveries: Deliveries, arrived: list[tuple[str, Any]]) -> list[str]:
    outcomes = []
    fixed: Callable[[], datetime] = lambda: RECEIVED_AT  # noqa: E731
    for n, (how, event) in enumerate(arrived):
        if how == "api":
            delivery = Delivery(
                source="api",
                external_id=event.source_event_id,
                event_type="cancellation.reported",
                payload={"cancellation_id": event.cancellation_id},
                correlation_id=f"corr-{n}",
                received_via="api",
            )
            recorded = await record_event(deliveries, delivery=delivery, event=event, clock=fixed)
        else:
            via, _, source = how.rpartition(":")
            recorded = await record_vendor_event(
                deliveries,
                source=source,
                event=event,
                correlation_id=f"corr-{n}",
                received_via=via or "webhook",
                unreadable_is_ignored=True,
                clock=fixed,
            )
        outcomes.append(recorded.outcome)
    return outcomes


async def stored_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            inbox = WebhookEvent.__table__
            states = SubscriptionState.__table__
            rows = {
                "inbox": (await session.execute(select(inbox).order_by(inbox.c.source, inbox.c.external_id))).all(),
                "states": (await session.execute(select(states).order_by(states.c.subscription_id))).all(),
                "outbox": (await session.execute(select(outbox).order_by(outbox.c.event_id))).all(),
            }
    finally:
        await engine.dispose()
    normalised: dict[str, list[dict[str, Any]]] = {}
    for name, found in rows.items():
        normalised[name] = []
        for row in found:
            values = dict(row._mapping)
            values.pop("id")  # surrogate keys count differently per database
            if name == "outbox":
                values["body"] = json.loads(values["body"])
            normalised[name].append(values)
    return normalised


@asynccontextmanager
async def sqlite_database(directory: Path) -> AsyncIterator[str]:
    url = f"sqlite+aiosqlite:///{directory / 'portable.db'}"
    await asyncio.to_thread(upgrade, url)
    yield url


async def test_group_commit_and_portable_stores_write_identical_rows(tmp_path: Path) -> None:
    async with (
        new_postgres_database("brink_group") as grouped_url,
        new_postgres_database("brink_portable") as portable_pg_url,
        sqlite_database(tmp_path) as portable_sqlite_url,
    ):
        arrived = arrivals()
        grouped = PostgresDeliveries(asyncpg_dsn(grouped_url), max_connections=2)
        await grouped.start()
        try:
            grouped_outcomes = await record_all(grouped, arrived)
        finally:
            await grouped.close()
        portable_outcomes = {}
        for url in (portable_pg_url, portable_sqlite_url):
            engine = make_engine(url)
            try:
                portable_outcomes[url] = await record_all(PortableDeliveries(make_sessionmaker(engine)), arrived)
            finally:
                await engine.dispose()

        expected = ["accepted", "duplicate", "superseded", "accepted", "accepted", "ignored", "ignored", "duplicate"]
        paid = ["ignored", "accepted", "ignored"]
        assert grouped_outcomes == [*expected, "accepted", "accepted", "accepted", "ignored", *paid]
        assert portable_outcomes[portable_pg_url] == grouped_outcomes
        assert portable_outcomes[portable_sqlite_url] == grouped_outcomes
        grouped_rows = await stored_rows(grouped_url)
        assert len(grouped_rows["inbox"]) == 13 and len(grouped_rows["outbox"]) == 7
        states = {row["subscription_id"]: (row["state"], row["state_version"]) for row in grouped_rows["states"]}
        assert states["sub_dun"][0] == "active" and "sub_other" not in states
        # The withdrawal's version is kept: a cancellation between it and the payment is still newer.
        assert states["cb_sub"] == (INVOICE_PAID, 1_790_000_500_000)
        [invoice_paid] = [row["body"] for row in grouped_rows["outbox"] if row["event_type"] == InvoicePaid.TYPE]
        assert invoice_paid["data"]["source_event_id"] == "ev_cb_paid_1"
        assert invoice_paid["data"]["state_version"] == 1_790_000_600_000
        for url in (portable_pg_url, portable_sqlite_url):
            portable_rows = await stored_rows(url)
            for table, rows in grouped_rows.items():
                assert len(portable_rows[table]) == len(rows)
                for portable, grouped_row in zip(portable_rows[table], rows, strict=True):
                    differing = {key for key in grouped_row if portable.get(key) != grouped_row[key]}
                    assert not differing, (table, {key: (portable.get(key), grouped_row[key]) for key in differing})
        by_id = {row["external_id"]: row for row in grouped_rows["inbox"]}
        assert by_id["evt_unreadable"]["received_via"] == "reconciliation"
        assert "missing or has a bad field" in by_id["evt_unreadable"]["outcome_reason"]
        assert (
            by_id["ev_cb"]["received_via"] == "webhook"
        )  # the webhook came first; the reconciler's copy changed nothing
