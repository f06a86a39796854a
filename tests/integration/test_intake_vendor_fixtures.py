"""Every Stripe and Chargebee example, signed and posted: mapped or ignored by type.

The examples are the project's own, in tests/fixtures/webhooks (written to the vendors' shapes); .ci/run runs
this file again with BRINK_VENDOR_FIXTURES pointing at the real vendor payloads beside the checkout. Partial
files are handled as SOURCES.md there says: ``event-data-only`` is wrapped in an event envelope, ``.object``
(a bare API object) and ``vendor-doc-truncated`` (elided by the vendor) are skipped.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from shared.migrate import upgrade
from tests.conftest import IN_CI, VENDOR_FIXTURES
from tests.intake_helpers import delivery_row, intake_settings, post_chargebee, post_stripe, running_intake

# Types whose mapping never depends on the payload.
ALWAYS = {
    "customer.subscription.deleted": "cancellation.received",
    "subscription_cancelled": "cancellation.received",
    "subscription_cancellation_scheduled": "cancellation.received",
    "subscription_scheduled_cancellation_removed": "cancellation.withdrawn",
    "subscription_reactivated": "cancellation.withdrawn",
}
# Types mapped only in some states; what the files present today show (read from each file, see SOURCES.md).
DEPENDS = {"customer.subscription.updated", "invoice.payment_failed", "payment_failed", "customer.subscription.resumed"}
KNOWN = {
    "customer.subscription.updated__stripe-ruby-mock.json": None,  # only the schedule changed
    "customer.subscription.updated__supabase-stripe-sync-engine.json": None,  # only metadata changed
    "customer.subscription.updated__stripe-model-callbacks.json": None,  # a plan swap
    "customer.subscription.updated__pay-rails.event-data-only.json": None,  # a plan swap
    "invoice.payment_failed__stripe-ruby-mock.json": None,  # a one-off invoice, no subscription
    "invoice.payment_failed__stripe-model-callbacks.json": None,  # Stripe retries later
    "invoice.payment_failed__pay-rails.event-data-only.json": None,  # Stripe retries later
    "payment_failed__mock-chargebee.json": None,  # dunning in progress
}


def vendor_folder() -> Path:
    if not VENDOR_FIXTURES.is_dir():
        message = f"the vendor webhook fixtures are missing at {VENDOR_FIXTURES}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return VENDOR_FIXTURES


def full_stripe_event(path: Path) -> dict[str, Any] | None:
    """The file as a full Stripe event, wrapping ``event-data-only`` files; None for files that are no event."""
    name = path.name
    if ".object__" in name or "vendor-doc-truncated" in name:
        return None
    content = json.loads(path.read_text())
    if "event-data-only" in name:
        return {
            "id": f"evt_fixture_{path.stem.replace('.', '_')}",
            "object": "event",
            "api_version": None,
            "created": int(time.time()),
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": name.split("__")[0],
            "data": content,
        }
    return content if content.get("object") == "event" else None


def full_chargebee_event(path: Path) -> dict[str, Any] | None:
    if "vendor-doc-truncated" in path.name:
        return None
    content = json.loads(path.read_text())
    return content if content.get("object") == "event" else None


def expected(name: str, event_type: str) -> str | type[Any] | None:
    """The Brink event type, None for ignored, or ``Any`` when a new file of a state-dependent type appears."""
    if event_type in ALWAYS:
        return ALWAYS[event_type]
    if event_type in DEPENDS:
        return KNOWN.get(name, Any)
    return None


@pytest.fixture
async def fresh_database(tmp_path: Path) -> str:
    # Its own database: the fixtures reuse placeholder ids that other tests must not collide with.
    url = f"sqlite+aiosqlite:///{tmp_path / 'vendor.db'}"
    await asyncio.to_thread(upgrade, url)
    return url


@pytest.mark.parametrize("vendor", ["stripe", "chargebee"])
async def test_every_full_vendor_event_is_mapped_or_ignored_as_its_type_says(
    vendor: str, fresh_database: str, amqp_url: str
) -> None:
    folder = vendor_folder() / vendor
    reader = full_stripe_event if vendor == "stripe" else full_chargebee_event
    events = [(path.name, event) for path in sorted(folder.glob("*.json")) if (event := reader(path)) is not None]
    assert len(events) >= 5, f"expected the vendor's examples in {folder}"
    # Several examples share zeroed placeholder ids (evt_000...); a real vendor never reuses one, so those
    # files get an id of their own, or all but the first would rightly be answered as duplicates.
    seen = [event["id"] for _, event in events]
    for name, event in events:
        if seen.count(event["id"]) > 1:
            event["id"] = f"{event['id']}_{name.removesuffix('.json')}"
    # Posted in the order the vendor would have sent them (their own timestamps), as ordering is enforced.
    events.sort(key=lambda item: item[1].get("created") or item[1].get("occurred_at") or 0)
    problems = []
    async with running_intake(intake_settings(database_url=fresh_database, amqp_url=amqp_url)) as (app, client):
        for name, event in events:
            response = await (post_stripe(client, event) if vendor == "stripe" else post_chargebee(client, event))
            event_type = event.get("type") or event.get("event_type")
            want = expected(name, event_type)
            row = await delivery_row(app, vendor, event["id"])
            got = (response.status_code, response.json().get("outcome"), row.published_type if row else None)
            if want is Any:
                ok = got[0] == 200 and got[1] in ("accepted", "ignored")
            elif want is None:
                ok = got == (200, "ignored", None) and bool(response.json().get("reason"))
            else:
                ok = got == (200, "accepted", want)
            if not ok:
                problems.append(f"{name}: expected {want}, got {got} {response.text[:200]}")
    assert not problems, "\n".join(problems)
