"""What every billing-system mapping shares: ignoring, account ids, monthly revenue. Plain Python, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.events import Money, PlanLine

# How many of each interval make a month, to normalise recurring prices to MRR.
MONTHS_PER_INTERVAL = {"day": 12 / 365, "week": 12 / 52, "month": 1.0, "year": 12.0}


class Ignored(Exception):
    """The event is genuine but says nothing about a cancellation; it is recorded as ignored."""


def object_at(parent: dict[str, Any], key: str) -> dict[str, Any]:
    """The JSON object under ``key``, or an empty one when it is absent or not an object."""
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def timestamp(value: Any) -> datetime | None:
    """A Unix timestamp in seconds as an aware datetime, or None when absent."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (OverflowError, OSError, ValueError):  # 1e20, Infinity, NaN: no date a table can hold
        raise ValueError(f"timestamp {str(value)[:32]} is out of range") from None


def account_id_for(source: str, customer_id: str, metadata: Any) -> str:
    """``<source>:<customer id>`` unless the billing customer names its own ``account_id``."""
    if isinstance(metadata, dict) and isinstance(metadata.get("account_id"), str) and metadata["account_id"].strip():
        return metadata["account_id"].strip()
    return f"{source}:{customer_id}"


def account_owner_in(*metadatas: Any) -> str | None:
    """The account owner (an email) the first metadata names as ``account_owner``, trimmed and lower case."""
    for metadata in metadatas:
        if isinstance(metadata, dict) and isinstance(metadata.get("account_owner"), str):
            owner = metadata["account_owner"].strip().lower()
            if owner:
                return owner[:255]
    return None


def monthly_minor(amount_minor: int | None, *, interval: str, interval_count: int) -> int:
    """A recurring amount billed every ``interval_count`` ``interval``s, as a monthly amount (rounded)."""
    if amount_minor is None:
        return 0
    months = MONTHS_PER_INTERVAL.get(interval, 1.0) * max(interval_count, 1)
    return round(amount_minor / months)


def plan_line(
    *,
    plan_id: str,
    name: str | None,
    quantity: int,
    unit_amount: int | None,
    currency: str | None,
    interval: str,
    interval_count: int,
    amount: int | None = None,
) -> PlanLine:
    """One plan or add-on with its monthly value; ``amount`` (already times quantity) wins when given."""
    total = amount if amount is not None else (unit_amount * quantity if unit_amount is not None else None)
    return PlanLine(
        plan_id=plan_id,
        name=name,
        quantity=quantity,
        unit_amount_minor=unit_amount,
        currency=currency.lower() if currency else None,
        interval=interval,
        interval_count=interval_count,
        mrr_minor=monthly_minor(total, interval=interval, interval_count=interval_count),
    )


def total_mrr(lines: list[PlanLine]) -> Money | None:
    """The sum of the lines' MRR when they share one currency; None when unknown or mixed."""
    currencies = {line.currency for line in lines if line.currency}
    if len(currencies) != 1:
        return None
    return Money(amount_minor=sum(line.mrr_minor for line in lines), currency=currencies.pop())


def as_int(value: Any, default: int = 0) -> int:
    """An integer field, tolerating absence and numeric strings; ValueError for anything else."""
    if value is None:
        return default
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        return int(value)
    except OverflowError:  # Infinity
        raise ValueError(f"expected a finite number, got {str(value)[:32]}") from None
