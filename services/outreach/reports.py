"""The summary report a CS lead and a CFO read: outcomes, save rate, revenue saved (verified and pending, apart)
and lost, time to first touch and how often the diagnosis was right, overall and cut seven ways."""

from __future__ import annotations

import csv
import io
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.offer_results import offer_results
from services.outreach.schemas import (
    REPORT_CUTS,
    FirstTouch,
    GroupTally,
    MoneyByCurrency,
    ReportSummary,
    RootCauseMatch,
    Tally,
)

OUTCOMES = ("saved", "stayed_unprompted", "lost", "moved_on")
RATED = ("saved", "lost", "moved_on")  # an unprompted stay is neither a save nor a loss


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


# What each cut groups by; a missing value gets a name rather than a blank row.
GROUP_OF: dict[str, Callable[[Any], str]] = {
    "symptom": lambda row: row.symptom,
    "root_cause": lambda row: row.root_cause,
    "confirmed_root_cause": lambda row: row.confirmed_root_cause or "not_recorded",
    "playbook": lambda row: row.playbook or "none",
    "owner": lambda row: row.owner or "unassigned",
    "initiated_by": lambda row: row.initiated_by or "unknown",
    "week": lambda row: _week(row.opened_at),
}
assert tuple(GROUP_OF) == REPORT_CUTS


def _money(rows: Sequence[Any], keep: Callable[[Any], bool]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.mrr_minor is not None and keep(row):
            sums[row.currency or "unknown"] += row.mrr_minor
    return dict(sums)


def _first_touch(rows: Sequence[Any]) -> FirstTouch:
    hours = [(row.first_touched_at - row.opened_at).total_seconds() / 3600 for row in rows if row.first_touched_at]
    return FirstTouch(
        touched=len(hours),
        median_hours=round(statistics.median(hours), 2) if hours else None,
        mean_hours=round(statistics.fmean(hours), 2) if hours else None,
    )


def tally(rows: Sequence[Any]) -> dict[str, Any]:
    """The figures for one group of cases."""
    counts = {status: sum(1 for row in rows if row.status == status) for status in ("open", *OUTCOMES)}
    rated = sum(counts[status] for status in RATED)
    confirmed = [row for row in rows if row.confirmed_root_cause not in (None, "unknown")]
    matched = sum(1 for row in confirmed if row.confirmed_root_cause == row.root_cause)
    return {
        "cases": len(rows),
        **counts,
        "reverted": sum(1 for row in rows if row.status == "saved" and row.save_status == "reverted"),
        "save_rate": round(counts["saved"] / rated, 4) if rated else None,
        "revenue": MoneyByCurrency(
            saved=_money(rows, lambda row: row.status == "saved" and row.save_status in ("verified", "pending")),
            saved_verified=_money(rows, lambda row: row.status == "saved" and row.save_status == "verified"),
            saved_pending=_money(rows, lambda row: row.status == "saved" and row.save_status == "pending"),
            lost=_money(rows, lambda row: row.status in ("lost", "moved_on")),
        ),
        "first_touch": _first_touch(rows),
        "root_cause_match": RootCauseMatch(
            confirmed=len(confirmed),
            matched=matched,
            rate=round(matched / len(confirmed), 4) if confirmed else None,
        ),
    }


async def summary(
    session: AsyncSession, *, since: datetime | None = None, until: datetime | None = None
) -> ReportSummary:
    """Cases opened in [since, until), tallied overall and by each cut."""
    rows = await repository.report_rows(session, since=since, until=until)
    cuts: dict[str, list[GroupTally]] = {}
    for cut, group_of in GROUP_OF.items():
        groups: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            groups[group_of(row)].append(row)
        cuts[f"by_{cut}"] = [GroupTally(value=value, **tally(group)) for value, group in sorted(groups.items())]
    offers = offer_results(await repository.applied_offer_rows(session, since=since, until=until))
    return ReportSummary(since=since, until=until, total=Tally(**tally(rows)), **cuts, offers=offers)


OFFER_COLUMNS = (
    "offer_currency",
    "offers_applied",
    "offers_still_there",
    "offers_pending",
    "offers_not_kept",
    "offer_cost_minor",
    "offer_mrr_kept_minor",
    "offer_months_to_recover_cost",
)


def as_csv(report: ReportSummary) -> str:
    """One row for the total and one per group of each cut; money in minor units, a column per currency. Then one
    row per offer type and currency (cut ``offer_type``), in the offer columns, which case rows leave empty."""
    tallies: list[tuple[str, str, Tally]] = [("total", "all", report.total)]
    for cut in REPORT_CUTS:
        tallies += [(cut, group.value, group) for group in getattr(report, f"by_{cut}")]
    currencies = sorted(
        {currency for _, _, t in tallies for side in t.revenue.model_dump().values() for currency in side}
    )
    money_columns = [
        (f"mrr_{side}_{currency}", side, currency)
        for side in ("saved_verified", "saved_pending", "lost")
        for currency in currencies
    ]
    case_columns = [
        "cases",
        "open",
        *OUTCOMES,
        "reverted",
        "save_rate",
        *(name for name, _, _ in money_columns),
        "touched",
        "median_hours_to_first_touch",
        "root_cause_confirmed",
        "root_cause_matched",
        "root_cause_match_rate",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["cut", "group", *case_columns, *OFFER_COLUMNS])
    for cut, group, t in tallies:
        writer.writerow(
            [
                cut,
                group,
                t.cases,
                t.open,
                *(getattr(t, outcome) for outcome in OUTCOMES),
                t.reverted,
                "" if t.save_rate is None else t.save_rate,
                *(getattr(t.revenue, side).get(currency, 0) for _, side, currency in money_columns),
                t.first_touch.touched,
                "" if t.first_touch.median_hours is None else t.first_touch.median_hours,
                t.root_cause_match.confirmed,
                t.root_cause_match.matched,
                "" if t.root_cause_match.rate is None else t.root_cause_match.rate,
                *([""] * len(OFFER_COLUMNS)),
            ]
        )
    for result in report.offers:
        writer.writerow(
            [
                "offer_type",
                result.kind,
                *([""] * len(case_columns)),
                result.currency,
                result.applied,
                result.still_there,
                result.pending,
                result.not_kept,
                result.cost_minor,
                result.mrr_kept_minor,
                "" if result.months_to_recover_cost is None else result.months_to_recover_cost,
            ]
        )
    return buffer.getvalue()
