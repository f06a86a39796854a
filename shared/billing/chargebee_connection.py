"""Chargebee through the official ``chargebee`` library's async client (over httpx): events read, subscriptions
written."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import urlsplit

import chargebee
import httpx

from shared.billing.base import BillingAuthError, BillingError, Retryable, RetryPolicy, require_idempotency_key

SOURCE = "chargebee"
KEY_SETTING = "BRINK_CHARGEBEE_API_KEY"
PAGE_SIZE = 100  # Chargebee's largest page
STATUS_IN_MESSAGE = re.compile(r"http_status_code:\s*(\d{3})")
T = TypeVar("T")


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

    async def remove_scheduled_cancellation(self, subscription_id: str, *, idempotency_key: str) -> dict[str, Any]:
        """Keep a subscription whose cancellation is scheduled (``non_renewing``); the key makes a retry change nothing."""
        headers = {chargebee.Chargebee.idempotency_header: require_idempotency_key(idempotency_key)}
        result = await self._call(
            lambda: self._client.Subscription.remove_scheduled_cancellation(subscription_id, {}, headers)
        )
        return dict(result.subscription.raw_data)

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
    return BillingError(SOURCE, f"{code} ({status})", status=status)
