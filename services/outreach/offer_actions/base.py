"""The small interface every billing vendor's offer adapter keeps, and the refusals it raises."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from services.outreach.offer_rules import OfferTerms
from shared.billing.base import BillingError, BillingUnavailable


class OfferActionError(Exception):
    """The subscription cannot take this offer as it stands (a 409 with the reason)."""


class SubscriptionGone(OfferActionError):
    """The subscription has already ended."""


class NothingToUndo(OfferActionError):
    """The subscription is not in the state the offer changes (no cancellation is scheduled)."""


class KindNotOffered(OfferActionError):
    """This billing system has no action for the offer's kind, or the offer names nothing for this system."""


class UndoImpossible(OfferActionError):
    """The vendor cannot take the offer back (any more): a 409 with the reason."""


@dataclass(frozen=True)
class Preview:
    """What applying will change: in words for the person about to click, and as the vendor's parameters, fixed now
    and stored with the offer so that applying (or retrying) sends exactly what was previewed. ``params`` also holds
    how to undo it (``UNDO``), or why it cannot be (``NO_UNDO``), and until when (``UNDO_UNTIL``, a Unix time).
    ``monthly_after_minor``: what the customer pays a month afterwards, when the offer changes the plan."""

    changes: str
    params: dict[str, Any]
    monthly_after_minor: int | None = None


@dataclass(frozen=True)
class Applied:
    """The subscription the offer now lives on: the same one, or a new one (a reactivation on Stripe)."""

    subscription_id: str


UNDO = "undo"  # the vendor's parameters that take the offer back, sent through ``apply`` as they are
NO_UNDO = "no_undo"  # why the vendor cannot take it back
UNDO_UNTIL = "undo_until"  # after this Unix time the undo would take back more than was given


class OfferActions(Protocol):
    """Preview, apply (idempotently, keyed by the offer's id), verify and undo an offer on one vendor's
    subscription."""

    source: str

    async def preview(self, subscription_id: str, terms: OfferTerms, *, reference: str, now: datetime) -> Preview:
        """What applying would change; raises ``OfferActionError`` when the subscription cannot take it.
        ``reference`` names what the offer creates at the vendor (a coupon): it is the offer's idempotency key."""
        ...

    async def apply(self, subscription_id: str, params: dict[str, Any], *, idempotency_key: str) -> Applied:
        """Send the previewed change; the same ``idempotency_key`` makes a second call change nothing."""
        ...

    async def verify(self, subscription_id: str, params: dict[str, Any]) -> bool:
        """Read the subscription back: whether the change holds."""
        ...

    async def ended(self, subscription_id: str) -> str | None:
        """The subscription's status if it has ended (nothing to undo on it), else None."""
        ...


def day(timestamp: int | None) -> str:
    """A vendor's Unix time as the date people read in a preview."""
    return "an unknown date" if timestamp is None else datetime.fromtimestamp(timestamp, UTC).date().isoformat()


DAYS_PER_MONTH = 30
SECONDS_PER_DAY = 86_400
PER_MONTH = {"month": Decimal(1), "year": Decimal(1) / 12, "week": Decimal(52) / 12, "day": Decimal(DAYS_PER_MONTH)}


def monthly_minor(amount_minor: int, *, quantity: int, interval: str, interval_count: int) -> int:
    """What a plan bills a month for ``quantity``: its amount per ``interval_count`` intervals (day, week, month,
    year) brought to a month (an unknown interval bills nothing a month, so the plan is never taken as cheaper)."""
    per_month = PER_MONTH.get(interval, Decimal(0)) / max(interval_count, 1)
    return int((Decimal(amount_minor) * quantity * per_month).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def months_from(start: int, months: int) -> int:
    """The Unix time ``months`` of 30 days after ``start``: when a pause of that many months ends."""
    return start + months * DAYS_PER_MONTH * SECONDS_PER_DAY


class CouponMaker(Protocol):
    async def create_coupon(self, params: Mapping[str, Any], *, idempotency_key: str) -> dict[str, Any]: ...

    async def retrieve_coupon(self, coupon_id: str) -> dict[str, Any] | None: ...


async def ensure_coupon(vendor: CouponMaker, coupon: dict[str, Any], *, idempotency_key: str) -> None:
    """Create the offer's coupon, or find it made by an earlier try whose idempotency key the vendor has forgotten
    (it refuses the id as taken): a retry days later still applies the offer."""
    try:
        await vendor.create_coupon(coupon, idempotency_key=idempotency_key)
    except BillingError as error:
        if isinstance(error, BillingUnavailable) or await vendor.retrieve_coupon(coupon["id"]) is None:
            raise


async def target_plan(read: Awaitable[dict[str, Any]], *, offer: str, plan: str, vendor: str) -> dict[str, Any]:
    """The cheaper plan as the vendor holds it; an ``OfferActionError`` naming it when the vendor has no such plan
    (the offers file names one that does not exist there: a 409 saying so, not the vendor's 404)."""
    try:
        return await read
    except BillingError as error:
        if error.status == 404:
            raise OfferActionError(f"{offer} moves to {plan}, which {vendor} does not have") from None
        raise


def idempotency_key(offer_id: str) -> str:
    """The vendor's idempotency key for an offer: a double click or a second instance applies it once."""
    return f"brink-offer-{offer_id}"


def undo_key(offer_id: str) -> str:
    """The key of the offer's undo: a different write from its apply, so a different key."""
    return f"brink-offer-{offer_id}-undo"


def undo_params(params: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """The parameters that take an applied offer back, as its preview fixed them; ``UndoImpossible`` with the
    reason when the vendor does not allow it, or no longer (the free time it gave has begun)."""
    if NO_UNDO in params or UNDO not in params:
        raise UndoImpossible(params.get(NO_UNDO) or "this offer has no undo at its billing system")
    until = params.get(UNDO_UNTIL)
    if until is not None and now.timestamp() >= until:
        raise UndoImpossible(f"it could be taken back only until {day(until)}: what it gave has begun")
    undo: dict[str, Any] = params[UNDO]
    return undo
