"""Our own fixtures, written to the vendors' real shapes, for the cases the vendor examples lack (see SOURCES.md gaps)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from services.intake.chargebee_mapping import map_chargebee_event
from services.intake.stripe_mapping import map_stripe_event
from shared.events import CancellationReceived, CancellationWithdrawn
from tests.conftest import FIXTURES


def load(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "intake" / name).read_text())


def test_customer_scheduled_at_period_end_from_the_portal() -> None:
    event = map_stripe_event(load("stripe.customer.subscription.updated.cancel_at_period_end.json"))
    assert isinstance(event, CancellationReceived)
    assert (event.scheduled, event.initiated_by, event.feedback, event.billing_reason) == (
        True,
        "customer",
        "unused",
        "cancellation_requested",
    )
    assert event.comment == "We only used it for one project"
    assert event.effective_at == datetime.fromtimestamp(1792592000, UTC)
    assert event.mrr is not None and event.mrr.amount_minor == 8 * 4000  # 8 seats x 480.00 a year


def test_the_scheduled_cancellation_removed_the_next_day() -> None:
    event = map_stripe_event(load("stripe.customer.subscription.updated.cancellation_removed.json"))
    assert isinstance(event, CancellationWithdrawn)
    assert event.cancellation_id == "stripe:sub_1QBrinkSched0001" and event.state_version == 1790086400


def test_flexible_billing_schedules_with_cancel_at_alone() -> None:
    event = map_stripe_event(load("stripe.customer.subscription.updated.cancel_at_flexible.json"))
    assert isinstance(event, CancellationReceived) and event.scheduled is True
    assert event.effective_at == datetime.fromtimestamp(1791000000, UTC)
    assert (event.account_id, event.livemode) == ("acme-eu", True)
    assert event.mrr is not None and (event.mrr.amount_minor, event.mrr.currency) == (19800, "eur")


def test_the_last_dunning_attempt_failed() -> None:
    event = map_stripe_event(load("stripe.invoice.payment_failed.final_attempt.json"))
    assert isinstance(event, CancellationReceived)
    assert (event.billing_reason, event.involuntary, event.initiated_by) == ("payment_failed", True, "billing_system")
    assert (event.subscription_id, event.customer_name) == ("sub_1QBrinkDunning0001", "Dunning Ltd")
    assert event.mrr is not None and event.mrr.amount_minor == 14700


def test_chargebee_product_catalog_2_subscription_items() -> None:
    event = map_chargebee_event(load("chargebee.subscription_cancelled.product_catalog_2.json"))
    assert isinstance(event, CancellationReceived)
    assert (event.account_id, event.customer_name, event.initiated_by) == ("kunde-gmbh", "Kunde GmbH", "customer")
    assert (event.billing_reason, event.feedback) == (None, "Switched to a competitor")
    # (3600.00 + 240.00) a year = 320.00 a month; the one-off onboarding charge is no recurring revenue
    assert event.mrr is not None and (event.mrr.amount_minor, event.mrr.currency) == (32000, "eur")
    assert event.state_version == 1790200000123
