"""The results page's charts from outreach's summary report."""

from __future__ import annotations

from collections import Counter

from services.outreach.desk.charts import Chart, bars, columns, money, percent
from services.outreach.schemas import ReportSummary


def main_currency(report: ReportSummary) -> str:
    """The currency with the most revenue saved or lost; charts show that one, tables show all."""
    totals: Counter[str] = Counter()
    for side in (report.total.revenue.saved, report.total.revenue.lost):
        totals.update(side)
    totals.pop("unknown", None)
    return totals.most_common(1)[0][0] if totals else "usd"


def result_charts(report: ReportSummary) -> tuple[str, list[Chart]]:
    """Save rate and revenue saved, by week of opening and by root cause."""
    currency = main_currency(report)
    fmt_money = money(currency)
    weeks, causes = report.by_week, report.by_root_cause
    return currency, [
        columns("Save rate by week opened", [(week.value, week.save_rate) for week in weeks], fmt=percent, ceiling=1.0),
        columns(
            f"Revenue saved by week opened ({currency.upper()} per month)",
            [(week.value, week.revenue.saved.get(currency, 0)) for week in weeks],
            fmt=fmt_money,
        ),
        bars(
            "Save rate by root cause",
            [(cause.value, cause.save_rate) for cause in causes],
            fmt=percent,
            ceiling=1.0,
        ),
        bars(
            f"Revenue saved by root cause ({currency.upper()} per month)",
            [(cause.value, cause.revenue.saved.get(currency, 0)) for cause in causes],
            fmt=fmt_money,
        ),
    ]
