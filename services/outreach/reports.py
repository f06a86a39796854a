"""The summary report: save rate and revenue by root cause and by week, and time to first touch."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.schemas import FirstTouch, MoneyByCurrency, ReportSummary, RootCauseTally, Tally, WeekTally

CLOSED = ("saved", "lost", "moved_on")


def _tally(rows: Sequence[Any]) -> dict[str, Any]:
    counts = {status: sum(1 for row in rows if row.status == status) for status in ("open", *CLOSED)}
    closed = sum(counts[status] for status in CLOSED)
    saved: dict[str, int] = defaultdict(int)
    lost: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.mrr_minor is None or row.status == "open":
            continue
        (saved if row.status == "saved" else lost)[row.currency or "unknown"] += row.mrr_minor
    return {
        "cases": len(rows),
        **counts,
        "save_rate": round(counts["saved"] / closed, 4) if closed else None,
        "revenue": MoneyByCurrency(saved=dict(saved), lost=dict(lost)),
    }


def _week(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


async def summary(
    session: AsyncSession, *, since: datetime | None = None, until: datetime | None = None
) -> ReportSummary:
    """Cases opened in [since, until), tallied overall, by root cause and by ISO week of opening."""
    rows = await repository.report_rows(session, since=since, until=until)
    by_cause: dict[str, list[Any]] = defaultdict(list)
    by_week: dict[str, list[Any]] = defaultdict(list)
    for row in rows:
        by_cause[row.root_cause].append(row)
        by_week[_week(row.opened_at)].append(row)
    hours = [(row.first_touched_at - row.opened_at).total_seconds() / 3600 for row in rows if row.first_touched_at]
    return ReportSummary(
        since=since,
        until=until,
        total=Tally(**_tally(rows)),
        by_root_cause=[RootCauseTally(root_cause=cause, **_tally(group)) for cause, group in sorted(by_cause.items())],
        by_week=[WeekTally(week=week, **_tally(group)) for week, group in sorted(by_week.items())],
        time_to_first_touch=FirstTouch(
            touched=len(hours),
            median_hours=round(statistics.median(hours), 2) if hours else None,
            mean_hours=round(statistics.fmean(hours), 2) if hours else None,
        ),
    )
