"""The small interface every billing vendor's offer adapter keeps, and the refusals it raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from services.outreach.offer_rules import OfferTerms


class OfferActionError(Exception):
    """The subscription cannot take this offer as it stands (a 409 with the reason)."""


class SubscriptionGone(OfferActionError):
    """The subscription has already ended."""


class NothingToUndo(OfferActionError):
    """The subscription is not in the state the offer changes (no cancellation is scheduled)."""


class KindNotOffered(OfferActionError):
    """This billing system has no action for the offer's kind."""


@dataclass(frozen=True)
class Preview:
    """What applying will change: in words for the person about to click, and as the vendor's parameters, fixed now
    and stored with the offer so that applying (or retrying) sends exactly what was previewed."""

    changes: str
    params: dict[str, Any]


class OfferActions(Protocol):
    """Preview, apply (idempotently, keyed by the offer's id) and verify an offer on one vendor's subscription."""

    source: str

    async def preview(self, subscription_id: str, terms: OfferTerms) -> Preview:
        """What applying would change; raises ``OfferActionError`` when the subscription cannot take it."""
        ...

    async def apply(self, subscription_id: str, params: dict[str, Any], *, idempotency_key: str) -> None:
        """Send the previewed change; the same ``idempotency_key`` makes a second call change nothing."""
        ...

    async def verify(self, subscription_id: str, params: dict[str, Any]) -> bool:
        """Read the subscription back: whether the change holds."""
        ...


def idempotency_key(offer_id: str) -> str:
    """The vendor's idempotency key for an offer: a double click or a second instance applies it once."""
    return f"brink-offer-{offer_id}"
