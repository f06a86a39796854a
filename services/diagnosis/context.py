"""More context about an account from an outside source (``BRINK_CONTEXT_URL``), over HTTP with retries."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr, ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from services.diagnosis.schemas import AccountSignals
from shared.logs import get_logger

log = get_logger("diagnosis.context")


class ContextUnavailable(Exception):
    """The context source could not be read; the diagnosis goes on without it, marked incomplete."""


class _Retryable(Exception):
    pass


class ContextSource:
    """Reads ``GET <base_url>/accounts/{account_id}``: signal groups shaped as ``PUT /signals`` takes them."""

    def __init__(
        self,
        *,
        base_url: str,
        token: SecretStr | None = None,
        timeout_seconds: float = 2.0,
        attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff_seconds: float = 0.2,
        cooldown_seconds: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if token is not None:  # a credential travels in a header, never in the URL (which reaches logs and proxies)
            self._headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        self._cooldown = cooldown_seconds
        self._down_until = 0.0
        self._timeout = httpx.Timeout(timeout_seconds)
        self._attempts = attempts
        self._transport = transport
        self._backoff = backoff_seconds

    async def fetch(self, account_id: str) -> dict[str, dict[str, Any]]:
        """Signal groups the source knows (empty when it knows the account not); raises ContextUnavailable."""
        # A source that just failed is not waited on again at once: diagnoses hold a transaction meanwhile.
        if time.monotonic() < self._down_until:
            raise ContextUnavailable("context source failed recently; not asked again yet")
        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self._attempts),
                wait=wait_exponential(multiplier=self._backoff, max=2),
                retry=retry_if_exception_type(_Retryable),
                reraise=True,
            ):
                with attempt:
                    return await self._fetch_once(account_id)
        except (_Retryable, httpx.HTTPError) as error:
            log.warning("diagnosis.context.unavailable", account_id=account_id, error=str(error) or repr(error))
            self._down_until = time.monotonic() + self._cooldown
            raise ContextUnavailable(str(error) or error.__class__.__name__) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _fetch_once(self, account_id: str) -> dict[str, dict[str, Any]]:
        url = f"{self._base_url}/accounts/{quote(account_id, safe='')}"
        async with httpx.AsyncClient(timeout=self._timeout, transport=self._transport) as client:
            try:
                response = await client.get(url, headers=self._headers)
            except httpx.TransportError as error:
                raise _Retryable(f"context source unreachable: {error!r}") from None
        if response.status_code == 404:
            return {}
        if response.status_code >= 500 or response.status_code == 429:
            raise _Retryable(f"context source answered {response.status_code}")
        if response.status_code != 200:
            raise ContextUnavailable(f"context source answered {response.status_code}")
        try:
            checked = AccountSignals.model_validate(response.json())
        except (ValueError, ValidationError) as error:
            raise ContextUnavailable(f"context source sent an unusable body: {str(error).splitlines()[0]}") from None
        return {name: group.model_dump(mode="json", exclude_unset=True) for name, group in checked.groups().items()}
