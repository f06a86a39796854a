"""Chargebee through the official ``chargebee`` library's async client (over httpx): events read, subscriptions
written."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import urlsplit

import chargebee
import httpx

from shared.billing.base import BillingAuthError, BillingError, Retryable, RetryPolicy, require_idempotency_key

SOURCE = "chargebee"
KEY_SETTING = "BRINK_CHARGEBEE_API_KEY"
PAGE_SIZE = 100  # Chargebee's largest page
STATUS_IN_MESSAGE = re.compile(r"http_status_code:\s*(\d{3})")
T = TypeVar("T")
SubscriptionAction = Literal[
    "remove_scheduled_cancellation",
    "cancel_for_items",
    "reactivate",
    "change_term_end",
    "pause",
    "resume",
    "update_for_items",
    "remove_coupons",
]
SUBSCRIPTION_ACTIONS: tuple[SubscriptionAction, ...] = get_args(SubscriptionAction)


class ChargebeeConnection:
    """Reads events and writes subscriptions with one ``chargebee.Chargebee``; the library's own retries stay off."""

    source = SOURCE
    key_setting = KEY_SETTING

    def __init__(
        self,
        *,
        site: str,
        api_key: str,
        api_base: str,
        timeout_seconds: float,
        retry: RetryPolicy,
        page_size: int = PAGE_SIZE,
    ) -> None:
        scheme = urlsplit(api_base).scheme
        self._client = chargebee.Chargebee(
            api_key=api_key,
            site=site,
            protocol=scheme,
            connection_time_out=timeout_seconds,
            read_time_out=timeout_seconds,
            use_async_client=True,
        )
        # The library builds https://<site>.chargebee.com/api/v2 itself; a configured base replaces it.
        self._client.env.api_endpoint = f"{api_base}/api/{self._client.env.API_VERSION}"
        if scheme == "http":
            # The library picks https whenever it verifies certificates (a class-wide switch); settings allow plain
            # http only to a server on this machine, where there is no certificate to verify.
            chargebee.Chargebee.verify_ca_certs = False
        self._retry = retry
        self._page_size = page_size

    async def _call(self, request: Callable[[], Awaitable[T]]) -> T:
        async def attempt() -> T:
            try:
                return await request()
            except (httpx.TimeoutException, httpx.TransportError) as error:
                raise Retryable(SOURCE, f"{type(error).__name__}: {error}") from None
            except Exception as error:  # the library raises bare Exceptions for bodies that are not its JSON
                raise classify(error) from error

        return await self._retry.call(SOURCE, attempt)

    async def list_events(self, *, types: Sequence[str], since: datetime) -> AsyncIterator[dict[str, Any]]:
        offset: str | None = None
        while True:
            params: dict[str, Any] = {
                "limit": self._page_size,
                "occurred_at": {"after": int(since.timestamp()) - 1},  # "after" is strict; ``since`` is inclusive
                "event_type": {"in": list(types)},
                "sort_by": {"asc": "occurred_at"},
            }
            if offset is not None:
                params["offset"] = offset
            page = await self._call(partial(self._client.Event.list, params))
            for entry in page.list:
                yield dict(entry.event.raw_data)
            offset = page.next_offset
            if not offset:
                break

    async def update_subscription(
        self, subscription_id: str, changes: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        headers = {chargebee.Chargebee.idempotency_header: require_idempotency_key(idempotency_key)}
        result = await self._call(lambda: self._client.Subscription.update(subscription_id, dict(changes), headers))
        return dict(result.subscription.raw_data)

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]:
        """The subscription as Chargebee holds it now (a read-back after a write)."""
        result = await self._call(lambda: self._client.Subscription.retrieve(subscription_id))
        return dict(result.subscription.raw_data)

    async def change_subscription(
        self, subscription_id: str, action: SubscriptionAction, params: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """One of Chargebee's subscription actions (``pause``, ``change_term_end``, ``update_for_items``, ...) with
        its parameters; the key makes a retry or a second instance change nothing."""
        if action not in SUBSCRIPTION_ACTIONS:
            raise ValueError(f"not a Chargebee subscription action this connection sends: {action!r}")
        headers = {chargebee.Chargebee.idempotency_header: require_idempotency_key(idempotency_key)}
        send = getattr(self._client.Subscription, action)
        result = await self._call(lambda: send(subscription_id, dict(params), headers))
        return dict(result.subscription.raw_data)

    async def create_coupon(self, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]:
        """A coupon (Create a coupon for items: an offer's discount); the key makes a retry create it once."""
        headers = {chargebee.Chargebee.idempotency_header: require_idempotency_key(idempotency_key)}
        result = await self._call(lambda: self._client.Coupon.create_for_items(dict(params), headers))
        return dict(result.coupon.raw_data)

    async def retrieve_coupon(self, coupon_id: str) -> dict[str, Any] | None:
        """The coupon, or None when Chargebee has none of that id."""
        try:
            result = await self._call(lambda: self._client.Coupon.retrieve(coupon_id))
        except BillingError as error:
            if error.status == 404:
                return None
            raise
        return dict(result.coupon.raw_data)

    async def retrieve_item_price(self, item_price_id: str) -> dict[str, Any]:
        """An item price: its ``price`` (minor units), ``currency_code``, ``period`` and ``period_unit``."""
        result = await self._call(lambda: self._client.ItemPrice.retrieve(item_price_id))
        return dict(result.item_price.raw_data)

    async def close(self) -> None:
        """Nothing to close: the library opens an httpx client per request."""


def status_of(error: Exception) -> int | None:
    code = getattr(error, "http_code", None)
    if isinstance(code, int):
        return code
    found = STATUS_IN_MESSAGE.search(str(error))
    return int(found.group(1)) if found else None


def classify(error: Exception) -> BillingError:
    """Which Chargebee failures another attempt may cure; an invalid key is not one of them."""
    status = status_of(error)
    code = getattr(error, "api_error_code", None) or type(error).__name__
    if status in (401, 403):
        return BillingAuthError(SOURCE, f"the key was refused ({status}, {code})", setting=KEY_SETTING, status=status)
    if status == 429 or (status or 0) >= 500:
        return Retryable(SOURCE, f"{code} ({status})", status=status)
    said = (getattr(error, "json_obj", None) or {}).get("message")  # Chargebee's own words, when it sent JSON
    return BillingError(SOURCE, f"{code} ({status})" + (f": {said}" if said else ""), status=status)
