"""The summary report against figures worked out by hand, on the real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator

import pytest

from services.outreach import reports
from services.outreach.endings import close_by_hand
from services.outreach.models import Case
from shared.db import transaction
from shared.events import DiagnosisCompleted, Money
from tests.outreach_helpers import Desk, diagnosis, open_desk, withdrawal


@pytest.fixture
async def desk(database_url: str) -> AsyncIterator[Desk]:
    desk, engine = await open_desk(database_url)
    yield desk
    await engine.dispose()


async def _close_by_hand(desk: Desk, case_id: str, outcome: str, confirmed: str) -> None:
    async with transaction(desk.sessions) as session:
        case = await session.get_one(Case, case_id)
        await close_by_hand(
            session,
            case,
            outcome=outcome,  # type: ignore[arg-type]
            reason="by hand",
            confirmed_root_cause=confirmed,  # type: ignore[arg-type]
            clock=desk.clock,
            policy=desk.policy,
            actor="maria",
        )


async def _worked(desk: Desk) -> dict[str, str]:
    """Six cases opened on Monday 2 November 2026 (ISO week 2026-W45), worked to every ending.

    A  poor_implementation, olga, 100 USD: reached after 2 h, withdrawn after 3 h: saved, verified 30 days on
    B  known_issue, olga, 200 USD: reached after 727 h, closed saved by hand, confirmed poor_implementation
    C  champion_left, ben, 300 USD, billing system: no answer after 6 h, then withdrawn: stayed unprompted
    D  wrong_fit, ben, 400 USD: closed lost by hand, confirmed wrong_fit
    E  company_distress (move on), olga, 500 EUR: closed moved_on by hand, confirmed unknown
    F  poor_implementation, olga, 600 USD: still open
    """
    payloads: dict[str, DiagnosisCompleted] = {
        "A": diagnosis(root_cause="poor_implementation", account_owner="olga", mrr_minor=10_000),
        "B": diagnosis(root_cause="known_issue", account_owner="olga", mrr_minor=20_000),
        "C": diagnosis(
            root_cause="champion_left", account_owner="ben", mrr_minor=30_000, initiated_by="billing_system"
        ),
        "D": diagnosis(root_cause="wrong_fit", account_owner="ben", mrr_minor=40_000),
        "E": diagnosis(root_cause="company_distress", decision="move_on", account_owner="olga").model_copy(
            update={"mrr": Money(amount_minor=50_000, currency="eur")}
        ),
        "F": diagnosis(root_cause="poor_implementation", account_owner="olga", mrr_minor=60_000),
    }
    ids = {name: await desk.receive(payload) for name, payload in payloads.items()}
    await _close_by_hand(desk, ids["D"], "lost", "wrong_fit")
    await _close_by_hand(desk, ids["E"], "moved_on", "unknown")
    desk.clock.advance(hours=2)
    await desk.complete((await desk.open_task(ids["A"])).id, "reached")
    desk.clock.advance(hours=1)
    await desk.withdraw(withdrawal(payloads["A"]))
    desk.clock.advance(hours=3)
    await desk.complete((await desk.open_task(ids["C"])).id, "no_answer")
    await desk.withdraw(withdrawal(payloads["C"]))
    await desk.wait(days=30)  # A's save stood the window
    desk.clock.advance(hours=1)
    await desk.complete((await desk.open_task(ids["B"])).id, "reached")
    await _close_by_hand(desk, ids["B"], "saved", "poor_implementation")
    return ids


async def test_the_summary_matches_figures_worked_out_by_hand(desk: Desk) -> None:
    await _worked(desk)
    async with desk.sessions() as session:
        report = await reports.summary(session)

    total = report.total
    assert (total.cases, total.open, total.saved, total.stayed_unprompted, total.lost, total.moved_on) == (
        6,
        1,
        2,
        1,
        1,
        1,
    )
    assert total.save_rate == 0.5  # 2 / (2 saved + 1 lost + 1 moved on); the unprompted stay counts for neither
    assert total.revenue.saved == {"usd": 30_000}
    assert (total.revenue.saved_verified, total.revenue.saved_pending) == ({"usd": 10_000}, {"usd": 20_000})
    assert total.revenue.lost == {"usd": 40_000, "eur": 50_000}
    assert (total.first_touch.touched, total.first_touch.median_hours, total.first_touch.mean_hours) == (
        3,
        6.0,
        245.0,
    )  # A 2 h, C 6 h, B 727 h
    assert (total.root_cause_match.confirmed, total.root_cause_match.matched, total.root_cause_match.rate) == (
        2,
        1,
        0.5,
    )

    owners = {group.value: group for group in report.by_owner}
    assert (owners["olga"].cases, owners["olga"].save_rate, owners["ben"].save_rate) == (4, 0.6667, 0.0)
    assert owners["ben"].stayed_unprompted == 1 and owners["ben"].revenue.saved == {}
    initiators = {group.value: group.cases for group in report.by_initiated_by}
    assert initiators == {"billing_system": 1, "customer": 5}
    confirmed = {group.value: group.cases for group in report.by_confirmed_root_cause}
    assert confirmed == {"not_recorded": 3, "poor_implementation": 1, "unknown": 1, "wrong_fit": 1}
    diagnosed = {group.value: (group.cases, group.saved) for group in report.by_root_cause}
    assert diagnosed["poor_implementation"] == (2, 1) and diagnosed["known_issue"] == (1, 1)
    assert [(group.value, group.cases) for group in report.by_week] == [("2026-W45", 6)]
    assert [(group.value, group.cases) for group in report.by_symptom] == [("unused", 6)]
    assert {group.value for group in report.by_playbook} >= {"move_on", "poor_implementation", "known_issue"}

    rows = {(row["cut"], row["group"]): row for row in csv.DictReader(io.StringIO(reports.as_csv(report)))}
    assert rows["total", "all"]["save_rate"] == "0.5" and rows["total", "all"]["stayed_unprompted"] == "1"
    assert rows["total", "all"]["mrr_saved_verified_usd"] == "10000"
    assert rows["total", "all"]["mrr_saved_pending_usd"] == "20000"
    assert rows["total", "all"]["mrr_lost_eur"] == "50000"
    assert rows["owner", "ben"]["save_rate"] == "0.0" and rows["owner", "ben"]["median_hours_to_first_touch"] == "6.0"
    assert rows["confirmed_root_cause", "not_recorded"]["root_cause_match_rate"] == ""
    assert len(rows) == 1 + sum(len(getattr(report, f"by_{cut}")) for cut in reports.GROUP_OF)


async def test_a_reverted_save_is_no_revenue_saved(desk: Desk) -> None:
    first = diagnosis(mrr_minor=70_000, state_version=1_000)
    case_id = await desk.receive(first)
    await desk.complete((await desk.open_task(case_id)).id, "reached")
    await desk.withdraw(withdrawal(first, state_version=2_000))
    desk.clock.advance(days=10)
    again = diagnosis(
        cancellation_id=first.cancellation_id, account_id=first.account_id, version=2, state_version=3_000
    )
    await desk.receive(again)

    async with desk.sessions() as session:
        total = (await reports.summary(session)).total
    assert (total.cases, total.saved, total.reverted, total.open) == (2, 1, 1, 1)
    assert total.revenue.saved == {} and total.revenue.saved_pending == {}
