"""The summary report's offer results, against figures worked out by hand."""

from __future__ import annotations

from types import SimpleNamespace

from services.outreach.offer_results import offer_results


def applied(kind: str, cost: int, case_status: str, save_status: str | None, mrr: int | None, currency: str = "usd"):
    return SimpleNamespace(
        kind=kind, currency=currency, cost_minor=cost, case_status=case_status, save_status=save_status, mrr_minor=mrr
    )


def test_offers_applied_customers_still_there_and_revenue_kept_against_cost_per_offer_type() -> None:
    rows = [
        applied("free_time", 14_700, "saved", "verified", 14_700),  # stayed the whole window
        applied("free_time", 6_860, "saved", "pending", 14_700),  # saved, window still running
        applied("free_time", 9_800, "lost", None, 21_000),
        applied("free_time", 4_000, "saved", "reverted", 8_000),  # cancelled again inside the window
        applied("free_time", 3_000, "saved", "verified", 6_000),
        applied("keep_subscription", 0, "saved", "verified", 49_900),
        applied("keep_subscription", 0, "open", None, 10_000),
        applied("discount", 5_000, "moved_on", None, 20_000, currency="eur"),
    ]
    results = {(result.kind, result.currency): result.model_dump() for result in offer_results(rows)}
    assert list(results) == [("discount", "eur"), ("free_time", "usd"), ("keep_subscription", "usd")]
    # free time: 5 applied, 2 still there, 1 pending, 2 not kept; it cost 14,700 + 6,860 + 9,800 + 4,000 + 3,000 =
    # 38,360 and kept 14,700 + 6,000 = 20,700 a month: 38,360 / 20,700 = 1.853 months of kept revenue pay for it.
    assert results[("free_time", "usd")] == {
        "kind": "free_time",
        "currency": "usd",
        "applied": 5,
        "still_there": 2,
        "pending": 1,
        "not_kept": 2,
        "cost_minor": 38_360,
        "mrr_kept_minor": 20_700,
        "months_to_recover_cost": 1.85,
    }
    keep = results[("keep_subscription", "usd")]
    assert (keep["applied"], keep["still_there"], keep["pending"], keep["cost_minor"]) == (2, 1, 1, 0)
    assert (keep["mrr_kept_minor"], keep["months_to_recover_cost"]) == (49_900, 0.0)
    discount = results[("discount", "eur")]
    assert (discount["not_kept"], discount["mrr_kept_minor"], discount["months_to_recover_cost"]) == (1, 0, None)


def test_no_offers_applied_means_no_results() -> None:
    assert offer_results([]) == []
