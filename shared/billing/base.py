"""What every billing connection offers, the errors it raises, and the retry policy they share."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

T = TypeVar("T")


class BillingError(Exception):
    """A billing system refused or failed a request."""

    def __init__(self, source: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.status = status


class BillingUnavailable(BillingError):
    """Down, rate-limiting or unreachable, still after every retry: try again later."""


class BillingAuthError(BillingError):
    """The key is invalid, revoked or lacks a permission (401 or 403): retrying will not help."""

    def __init__(self, source: str, message: str, *, setting: str, status: int | None = None) -> None:
        super().__init__(source, message, status=status)
        self.setting = setting


class Retryable(BillingError):
    """One attempt failed in a way another attempt may not (429, 5xx, a timeout, a dropped connection)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int
    backoff_seconds: float
    max_backoff_seconds: float = 30.0

    async def call(self, source: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """``attempt()`` until it succeeds, backing off exponentially with jitter; ``BillingUnavailable`` at the end."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Retryable),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=self.max_backoff_seconds)
            + wait_random(0, self.backoff_seconds),
            before_sleep=before_sleep_log(logging.getLogger("shared.billing.retry"), logging.INFO),
            reraise=True,
        )
        try:
            async for state in retrying:
                with state:
                    return await attempt()
        except Retryable as failed:
            raise BillingUnavailable(source, str(failed).removeprefix(f"{source}: "), status=failed.status) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


class BillingConnection(Protocol):
    """One billing system, read and written through its official library."""

    source: str  # "stripe" or "chargebee", as intake names the webhook source
    key_setting: str  # the setting that holds its key, for error messages (never the key)

    def list_events(self, *, types: Sequence[str], since: datetime) -> AsyncIterator[dict[str, Any]]:
        """Every event of these types that occurred at or after ``since`` (the vendor's order), as plain JSON."""
        ...

    async def update_subscription(
        self, subscription_id: str, changes: Mapping[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        """Change a subscription; the same ``idempotency_key`` makes a retry or a second instance change nothing."""
        ...

    async def close(self) -> None: ...


def require_idempotency_key(key: str) -> str:
    """Every write carries a key derived from our own ids, never a random one."""
    if not key or len(key) > 255:
        raise ValueError("a billing write needs an idempotency key of 1 to 255 characters")
    return key
