"""The account owner read from billing metadata: Stripe customer before subscription, Chargebee meta_data, the
failed invoice's subscription details; blank or non-text values are no owner."""

from __future__ import annotations

from services.intake.chargebee_mapping import map_chargebee_event
from services.intake.stripe_mapping import map_stripe_event
from shared.events import CancellationReceived
from tests.helpers import stripe_event, stripe_subscription
from tests.intake_helpers import chargebee_event, chargebee_subscription


def owner_of(payload: object) -> str | None:
    assert isinstance(payload, CancellationReceived)
    return payload.account_owner


def test_stripe_takes_the_customers_owner_before_the_subscriptions() -> None:
    subscription = stripe_subscription(metadata={"account_owner": " Olga@Example.COM "})
    assert owner_of(map_stripe_event(stripe_event("customer.subscription.deleted", subscription))) == "olga@example.com"
    subscription["customer"] = {"id": "cus_1", "object": "customer", "metadata": {"account_owner": "pete@example.com"}}
    assert owner_of(map_stripe_event(stripe_event("customer.subscription.deleted", subscription))) == "pete@example.com"
    for blank in ({"account_owner": "  "}, {"account_owner": 42}, {}):
        subscription = stripe_subscription(metadata=blank)
        assert owner_of(map_stripe_event(stripe_event("customer.subscription.deleted", subscription))) is None


def test_a_failed_invoice_reads_its_subscription_details() -> None:
    invoice = {
        "id": "in_1",
        "object": "invoice",
        "customer": "cus_2",
        "subscription": "sub_2",
        "next_payment_attempt": None,
        "subscription_details": {"metadata": {"account_owner": "mia@example.com"}},
        "lines": {"object": "list", "data": []},
    }
    assert owner_of(map_stripe_event(stripe_event("invoice.payment_failed", invoice))) == "mia@example.com"


def test_chargebee_takes_the_customers_meta_data_then_the_subscriptions() -> None:
    subscription = chargebee_subscription(meta_data={"account_owner": "olga@example.com"})
    assert owner_of(map_chargebee_event(chargebee_event("subscription_cancelled", subscription))) == "olga@example.com"
    customer = {"id": subscription["customer_id"], "object": "customer", "meta_data": {"account_owner": "Pete@x.io"}}
    event = chargebee_event("subscription_cancelled", subscription, customer=customer)
    assert owner_of(map_chargebee_event(event)) == "pete@x.io"
