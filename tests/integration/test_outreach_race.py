"""Two outreach instances racing over the same due timers: every escalation fires exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select

from services.outreach.cases import open_or_update_case
from services.outreach.escalation import Fired, fire_due_timers
from services.outreach.models import Case, Task, Timer
from shared.db import transaction
from tests.outreach_helpers import Desk, FakeClock, diagnosis, open_desk


async def drain(desk: Desk) -> list[Fired]:
    """One scheduler instance: one timer per transaction until nothing is due."""
    fired: list[Fired] = []
    while True:
        async with transaction(desk.sessions) as session:
            batch = await fire_due_timers(session, clock=desk.clock, policy=desk.policy, batch=1)
        fired += batch
        if not batch:
            # Nothing this instance could take: done when nothing is due any more, else the other holds it.
            async with desk.sessions() as session:
                if not await session.scalar(
                    select(func.count())
                    .select_from(Timer)
                    .where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None), Timer.due_at <= desk.clock.now())
                ):
                    return fired
            await asyncio.sleep(0.01)


async def test_two_schedulers_fire_each_escalation_exactly_once_and_one_rung_at_a_time(database_url: str) -> None:
    clock = FakeClock()
    first, first_engine = await open_desk(database_url, clock=clock)
    second, second_engine = await open_desk(database_url, clock=clock, wipe=False)
    try:
        case_ids = [await first.receive(diagnosis(root_cause="payment_failure")) for _ in range(20)]
        for case_id in case_ids:  # both steps tried at once, neither answered: two climbs per case
            for task in await first.tasks(case_id):
                await first.complete(task.id, "no_answer")
        clock.advance(hours=5)  # payment failures count calendar hours: both climbs of every case are due

        one, two = await asyncio.gather(drain(first), drain(second))

        timer_ids = [fired.timer_id for fired in one + two]
        assert len(timer_ids) == len(set(timer_ids)) == 40
        if database_url.startswith("postgresql"):
            # Skip-locked lets both work side by side; SQLite's single writer may let one take everything.
            assert one and two, "both instances should have taken part in the race"
        outcomes = Counter(fired.outcome for fired in one + two)
        assert outcomes == {"escalated": 20, "waiting_for_previous_rung": 20}, "the second rung waits for the first"
        assert await escalations(first, case_ids) == dict.fromkeys(case_ids, 1)

        clock.advance(hours=9)  # the first rung's task is overdue now: the second climb may fire
        one, two = await asyncio.gather(drain(first), drain(second))
        assert Counter(fired.outcome for fired in one + two)["escalated"] == 20
        assert await escalations(first, case_ids) == dict.fromkeys(case_ids, 2)
        async with first.sessions() as session:
            levels = dict((await session.execute(select(Case.id, Case.escalation_level))).all())
            unfired = await session.scalar(
                select(func.count())
                .select_from(Timer)
                .where(Timer.fired_at.is_(None), Timer.cancelled_at.is_(None), Timer.due_at <= clock.now())
            )
        assert unfired == 0
        assert {case_id: levels[case_id] for case_id in case_ids} == dict.fromkeys(case_ids, 1)  # a repeated rung
    finally:
        await first_engine.dispose()
        await second_engine.dispose()


async def escalations(desk: Desk, case_ids: list[str]) -> dict[str, int]:
    """Rung tasks per case."""
    async with desk.sessions() as session:
        counted = Counter((await session.execute(select(Task.case_id).where(Task.kind == "escalation"))).scalars())
    return {case_id: counted[case_id] for case_id in case_ids}


async def test_a_case_being_opened_does_not_hold_up_the_next_one_on_postgres(postgres_url: str) -> None:
    desk, engine = await open_desk(postgres_url)
    try:
        async with transaction(desk.sessions) as session:
            # A transaction that has opened a case and not committed yet (a batch still being handled) ...
            await open_or_update_case(session, diagnosis(), policy=desk.policy, clock=desk.clock)
            # ... must not make another one wait for the rotation it took a turn from.
            await asyncio.wait_for(desk.receive(diagnosis()), timeout=10)
        async with desk.sessions() as session:
            owners = list((await session.execute(select(Case.owner))).scalars())
        assert len(owners) == 2 and len(set(owners)) == 2  # consecutive turns of the rotation: two people
    finally:
        await engine.dispose()
