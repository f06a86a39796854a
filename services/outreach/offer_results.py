"""What save offers achieved, per offer type: offers applied, customers still there after the save's verification
window, and the monthly revenue they kept against what the offers cost. Plain Python over the report's rows."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from services.outreach.schemas import OfferResult


def _outcome(row: Any) -> str:
    """still_there: the case was saved and the save verified (the customer stayed the whole window); pending: the
    case is open or its save not yet verified; not_kept: lost, moved on, or saved and reverted."""
    if row.case_status == "saved" and row.save_status == "verified":
        return "still_there"
    if row.case_status == "open" or (row.case_status == "saved" and row.save_status == "pending"):
        return "pending"
    return "not_kept"


def offer_results(rows: Sequence[Any]) -> list[OfferResult]:
    """One result per offer kind and currency, from applied offers' rows (kind, currency, cost_minor, case_status,
    save_status, mrr_minor); each offer counts its case's revenue once."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for row in rows:
        groups[(row.kind, row.currency)].append(row)
    results = []
    for (kind, currency), group in sorted(groups.items()):
        outcomes = [_outcome(row) for row in group]
        cost = sum(row.cost_minor for row in group)
        kept = sum(row.mrr_minor or 0 for row, outcome in zip(group, outcomes, strict=True) if outcome == "still_there")
        payback = (Decimal(cost) / kept).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) if kept else None
        results.append(
            OfferResult(
                kind=kind,
                currency=currency,
                applied=len(group),
                still_there=outcomes.count("still_there"),
                pending=outcomes.count("pending"),
                not_kept=outcomes.count("not_kept"),
                cost_minor=cost,
                mrr_kept_minor=kept,
                months_to_recover_cost=float(payback) if payback is not None else None,
            )
        )
    return results
