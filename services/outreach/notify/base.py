"""The notifier base: one ``send`` per vendor; ``deliver`` adds retries with exponential backoff, or after the
wait a rate-limited endpoint asks for."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    RetryError,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)
from tenacity.stop import stop_base

# The longest a rate-limited endpoint's Retry-After is waited for in place; a longer wait gives the notification back
# to the delivery loop, to be tried again once that time has passed (other notifications are not held meanwhile).
LONGEST_WAIT_SECONDS = 30.0


class DeliveryFailed(Exception):
    """The endpoint did not take the notification (after the retries, when raised by ``deliver``).

    ``retry_after``: the seconds a rate-limited endpoint asked us to wait before trying again.
    """

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` of a 429 answer in seconds (Slack sends whole seconds); None when absent or unreadable."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None


@dataclass(frozen=True)
class Message:
    id: str
    kind: str
    body: dict[str, Any]
    # It may have reached the endpoint already: tried before, or its sender stopped mid-send (a crash).
    in_doubt: bool = False


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

    async def already_delivered(self, message: Message) -> bool:
        """Whether the endpoint has the message already, for channels that can tell; asked before sending again
        a message that may have arrived. Channels that cannot tell answer False (the message is sent again)."""
        return False

    async def deliver(self, message: Message) -> None:
        """Send with retries and exponential backoff, or after the wait a 429 asked for (up to
        ``LONGEST_WAIT_SECONDS``); raises DeliveryFailed when every try failed or the endpoint asked for longer."""
        backoff = wait_exponential(multiplier=self.backoff_seconds, max=self.backoff_seconds * 30)

        def wait(state: RetryCallState) -> float:
            asked = _asked_to_wait(state)
            return asked if asked is not None else backoff(state)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.attempts) | _AskedToWaitTooLong(),
            wait=wait,
            retry=retry_if_exception_type((DeliveryFailed, httpx.HTTPError)),
        )
        in_doubt = message.in_doubt
        try:
            async for attempt in retrying:
                with attempt:
                    if in_doubt and await self.already_delivered(message):
                        return
                    try:
                        await self.send(message)
                    except httpx.TransportError:
                        in_doubt = True  # no answer: the request may have arrived all the same
                        raise
        except RetryError as error:
            cause = error.last_attempt.exception()
            tries = error.last_attempt.attempt_number
            raise DeliveryFailed(
                f"{self.channel}: {cause or 'failed'} after {tries} {'try' if tries == 1 else 'tries'}",
                retry_after=cause.retry_after if isinstance(cause, DeliveryFailed) else None,
            ) from None

    @staticmethod
    def check(response: httpx.Response) -> None:
        """Raise DeliveryFailed for anything but a 2xx answer (with the wait asked for, for a 429)."""
        if response.status_code == 429:
            asked = retry_after_seconds(response)
            wait = f", asked to retry after {asked:g} s" if asked is not None else ""
            raise DeliveryFailed(f"HTTP 429: rate limited{wait}", retry_after=asked)
        if not response.is_success:
            raise DeliveryFailed(f"HTTP {response.status_code}: {response.text[:200]}")


def _asked_to_wait(state: RetryCallState) -> float | None:
    error = state.outcome.exception() if state.outcome is not None else None
    return error.retry_after if isinstance(error, DeliveryFailed) else None


class _AskedToWaitTooLong(stop_base):
    """Stop retrying in place when the endpoint asked for more than ``LONGEST_WAIT_SECONDS``."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        asked = _asked_to_wait(retry_state)
        return asked is not None and asked > LONGEST_WAIT_SECONDS
