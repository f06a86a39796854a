"""The notifier base: one ``send`` per vendor; ``deliver`` adds retries with exponential backoff."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import AsyncRetrying, RetryError, retry_if_exception_type, stop_after_attempt, wait_exponential


class DeliveryFailed(Exception):
    """The endpoint did not take the notification (after the retries, when raised by ``deliver``)."""


@dataclass(frozen=True)
class Message:
    id: str
    kind: str
    body: dict[str, Any]


class Notifier(ABC):
    """One outbound channel. Subclasses send once; retrying is the base's job."""

    channel: str
    # Personal channels reach one person (the message body's "to"); the others post to a team's channel.
    personal: bool = False

    def __init__(
        self, *, client: httpx.AsyncClient | None = None, attempts: int = 3, backoff_seconds: float = 1.0
    ) -> None:
        self._client = client
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds

    @property
    def client(self) -> httpx.AsyncClient:
        """The HTTP client of a channel that posts over HTTP."""
        if self._client is None:
            raise TypeError(f"the {self.channel} notifier was built without an HTTP client")
        return self._client

    @abstractmethod
    async def send(self, message: Message) -> None:
        """Send once; raise DeliveryFailed (or an httpx error) when the endpoint does not accept it."""

    async def deliver(self, message: Message) -> None:
        """Send with retries and exponential backoff; raises DeliveryFailed when every try failed."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_seconds, max=self.backoff_seconds * 30),
            retry=retry_if_exception_type((DeliveryFailed, httpx.HTTPError)),
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.send(message)
        except RetryError as error:
            cause = error.last_attempt.exception()
            raise DeliveryFailed(f"{self.channel}: {cause or 'failed'} after {self.attempts} tries") from None

    @staticmethod
    def check(response: httpx.Response) -> None:
        """Raise DeliveryFailed for anything but a 2xx answer."""
        if not response.is_success:
            raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")
