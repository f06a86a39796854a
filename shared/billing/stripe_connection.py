"""Stripe through the official ``stripe`` library's async client (over httpx): events read, subscriptions written."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import stripe

from shared.billing.base import BillingAuthError, BillingError, Retryable, RetryPolicy, require_idempotency_key

SOURCE = "stripe"
KEY_SETTING = "BRINK_STRIPE_API_KEY"
PAGE_SIZE = 100  # Stripe's largest page
T = TypeVar("T")


class StripeConnection:
    """Reads events and writes subscriptions with one ``stripe.StripeClient``; its own retries are off (ours back
    off on 429 and 5xx only)."""

    source = SOURCE
    key_setting = KEY_SETTING

    def __init__(
        self, *, api_key: str, api_base: str, timeout_seconds: float, retry: RetryPolicy, page_size: int = PAGE_SIZE
    ) -> None:
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base}, http_client=self._http, max_network_retries=0
        )
        self._retry = retry
        self._page_size = page_size

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            try:
                return await request()
            except stripe.StripeError as error:
                raise classify(error) from None

        return await self._retry.call(SOURCE, attempt)

    async def list_events(self, *, types: Sequence[str], since: datetime) -> AsyncIterator[dict[str, Any]]:
        # One listing per type: Stripe's ``type`` filter takes one name (``types[]`` is newer and not everywhere).
        for event_type in types:
            starting_after: str | None = None
            while True:
                params: dict[str, Any] = {
                    "type": event_type,
                    "created": {"gte": int(since.timestamp())},
                    "limit": self._page_size,
                }
                if starting_after is not None:
                    params["starting_after"] = starting_after
                page = await self._call(partial(self._client.v1.events.list_async, params=params))  # type: ignore[arg-type]
                for event in page.data:
                    yield event.to_dict()
                if not page.has_more or not page.data:
                    break
                starting_after = page.data[-1].id

    async def update_subscription(
        self, subscription_id: str, changes: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        options = {"idempotency_key": require_idempotency_key(idempotency_key)}
        updated = await self._call(
            lambda: self._client.v1.subscriptions.update_async(
                subscription_id,
                params=dict(changes),  # type: ignore[arg-type]
                options=options,  # type: ignore[arg-type]
            )
        )
        return updated.to_dict()

    async def retrieve_subscription(self, subscription_id: str, *, expand: Sequence[str] = ()) -> dict[str, Any]:
        """The subscription as Stripe holds it now (a read-back after a write), with ``expand`` fields expanded."""
        params: dict[str, Any] = {"expand": list(expand)} if expand else {}
        found = await self._call(
            lambda: self._client.v1.subscriptions.retrieve_async(subscription_id, params=params)  # type: ignore[arg-type]
        )
        return found.to_dict()

    async def create_subscription(self, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """A new subscription; the key makes a retry or a second instance create it once."""
        options = {"idempotency_key": require_idempotency_key(idempotency_key)}
        created = await self._call(
            lambda: self._client.v1.subscriptions.create_async(params=dict(params), options=options)  # type: ignore[arg-type]
        )
        return created.to_dict()

    async def create_coupon(self, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """A coupon (an offer's discount); the key makes a retry create it once."""
        options = {"idempotency_key": require_idempotency_key(idempotency_key)}
        created = await self._call(
            lambda: self._client.v1.coupons.create_async(params=dict(params), options=options)  # type: ignore[arg-type]
        )
        return created.to_dict()

    async def retrieve_coupon(self, coupon_id: str) -> dict[str, Any] | None:
        """The coupon, or None when Stripe has none of that id."""
        try:
            found = await self._call(lambda: self._client.v1.coupons.retrieve_async(coupon_id))
        except BillingError as error:
            if error.status == 404:
                return None
            raise
        return found.to_dict()

    async def customer_subscriptions(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's subscriptions, ended ones too (the first page, newest first)."""
        params = {"customer": customer_id, "status": "all", "limit": self._page_size}
        page = await self._call(lambda: self._client.v1.subscriptions.list_async(params=params))  # type: ignore[arg-type]
        return [subscription.to_dict() for subscription in page.data]

    async def retrieve_plan(self, plan_id: str) -> dict[str, Any]:
        """A plan (a recurring price's id works too): its amount, currency and interval."""
        found = await self._call(lambda: self._client.v1.plans.retrieve_async(plan_id))
        return found.to_dict()

    async def close(self) -> None:
        await self._http.close_async()


def classify(error: stripe.StripeError) -> BillingError:
    """Which Stripe failures another attempt may cure; an invalid or under-privileged key is not one of them."""
    status = error.http_status
    message = error.user_message or type(error).__name__
    if isinstance(error, (stripe.AuthenticationError, stripe.PermissionError)) or status in (401, 403):
        return BillingAuthError(
            SOURCE, f"the key was refused ({status}): {message}", setting=KEY_SETTING, status=status
        )
    if isinstance(error, (stripe.RateLimitError, stripe.APIConnectionError)) or status == 429 or (status or 0) >= 500:
        return Retryable(SOURCE, f"{type(error).__name__} ({status}): {message}", status=status)
    return BillingError(SOURCE, f"{type(error).__name__} ({status}): {message}", status=status)
