"""The billing connections the settings switch on: one per billing system with a key."""

from __future__ import annotations

from shared.billing.base import BillingConnection, RetryPolicy
from shared.billing.settings import BillingSettings
from shared.logs import get_logger

log = get_logger("shared.billing")


def billing_connections(settings: BillingSettings, *, purpose: str) -> dict[str, BillingConnection]:
    """A connection per configured billing system; each one left out is said once, naming what switches it on."""
    retry = RetryPolicy(attempts=settings.billing_attempts, backoff_seconds=settings.billing_backoff_seconds)
    connections: dict[str, BillingConnection] = {}
    # Each vendor's library is imported only when it is connected: together they take seconds to import.
    if settings.stripe_api_key is not None:
        from shared.billing.stripe_connection import StripeConnection

        connections["stripe"] = StripeConnection(
            api_key=settings.stripe_api_key.get_secret_value(),
            api_base=settings.stripe_api_base,
            timeout_seconds=settings.billing_timeout_seconds,
            retry=retry,
        )
    else:
        log.info("billing.stripe.not_configured", without=purpose, setting="BRINK_STRIPE_API_KEY")
    if settings.chargebee_site is not None and settings.chargebee_api_key is not None:
        from shared.billing.chargebee_connection import ChargebeeConnection

        connections["chargebee"] = ChargebeeConnection(
            site=settings.chargebee_site,
            api_key=settings.chargebee_api_key.get_secret_value(),
            api_base=settings.chargebee_base,
            timeout_seconds=settings.billing_timeout_seconds,
            retry=retry,
        )
    else:
        log.info(
            "billing.chargebee.not_configured",
            without=purpose,
            setting="BRINK_CHARGEBEE_SITE and BRINK_CHARGEBEE_API_KEY",
        )
    return connections
