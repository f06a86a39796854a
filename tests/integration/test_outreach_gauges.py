"""Outreach's gauges read what they count, not the whole history: the overdue-task count reads the overdue tasks
from an index of open ones, and cases by status are summed from the changes the database records as cases are
written. Counting every case, or every open task, once a minute read a table that only grows, and pushed the rest
of the database out of PostgreSQL's buffers."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, insert, select, text

from services.outreach import repository
from services.outreach.cases import open_or_update_case
from services.outreach.models import CaseCountChange
from shared import metrics
from shared.db import make_engine, make_sessionmaker, transaction
from shared.migrate import upgrade
from tests.conftest import new_postgres_database
from tests.helpers import counting_statements
from tests.outreach_helpers import Desk, diagnosis, open_desk


async def counts(desk: Desk) -> dict[str, int]:
    async with transaction(desk.sessions) as session:
        return await repository.count_cases_by_status(session)


async def change_rows(desk: Desk) -> int:
    async with transaction(desk.sessions) as session:
        return (await session.execute(select(func.count()).select_from(CaseCountChange))).scalar_one()


async def test_cases_are_counted_by_status_as_they_open_and_close_without_reading_the_cases(
    database_url: str,
) -> None:
    desk, engine = await open_desk(database_url)
    try:
        before = await counts(desk)  # other tests' cases were deleted, and the deletions counted
        cases = [await desk.receive(diagnosis()) for _ in range(4)]
        await desk.close(cases[0], "saved")
        await desk.close(cases[1], "lost")
        with counting_statements(engine) as statements:
            first = await counts(desk)
        again = await counts(desk)
        rows_after_folding = await change_rows(desk)
    finally:
        await engine.dispose()
    assert before == {}
    assert first == again == {"open": 2, "saved": 1, "lost": 1}
    assert rows_after_folding == 3, "the changes are folded into one row per status that has cases"
    assert not [statement for statement in statements if "outreach_cases" in statement]


async def test_a_case_written_while_the_gauge_counts_is_counted_next_time_and_two_counts_at_once_agree(
    postgres_url: str,
) -> None:
    desk, engine = await open_desk(postgres_url)
    try:
        await desk.receive(diagnosis())
        async with transaction(desk.sessions) as writing:
            await open_or_update_case(writing, diagnosis(), policy=desk.policy, clock=desk.clock)
            await writing.flush()  # its change is recorded, not yet committed
            while_writing = await counts(desk)
        after_commit = await counts(desk)
        async with transaction(desk.sessions) as folding:
            first = await repository.count_cases_by_status(folding)
            # A second count waits for the first fold's rows; once they are gone it must still see every case.
            second = asyncio.create_task(counts(desk))
            await asyncio.sleep(0.5)
            assert not second.done()
        concurrent = await second
    finally:
        await engine.dispose()
    assert while_writing == {"open": 1}
    assert after_commit == first == concurrent == {"open": 2}


async def test_the_migration_counts_the_cases_already_there() -> None:
    async with new_postgres_database("brink_counts", migrated_to="outreach_0013") as url:
        desk, engine = await open_desk(url)
        try:
            cases = [await desk.receive(diagnosis()) for _ in range(3)]
            await desk.close(cases[0], "moved_on")
        finally:
            await engine.dispose()
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        try:
            async with transaction(make_sessionmaker(engine)) as session:
                counted = await repository.count_cases_by_status(session)
        finally:
            await engine.dispose()
    assert counted == {"open": 2, "moved_on": 1}


async def test_the_overdue_count_counts_open_tasks_past_due_from_the_index_of_open_tasks(postgres_url: str) -> None:
    desk, engine = await open_desk(postgres_url, channels=("slack",))
    try:
        for number in range(3):
            await desk.receive(diagnosis(cancellation_id=f"sub_gauge_{number}"))
        [first, *_] = await desk.open_cases()
        await desk.complete((await desk.open_task(first.id)).id, "no_answer")  # done: never overdue
        async with transaction(desk.sessions) as session:
            due = sorted(
                (await session.execute(text("SELECT due_at FROM outreach_tasks WHERE status = 'open'"))).scalars()
            )
            with counting_statements(engine) as statements:
                none_yet = await repository.count_overdue_tasks(session, now=due[0])
                overdue_later = await repository.count_overdue_tasks(session, now=due[-1])
            [count, *_] = statements
            await session.execute(text("SET LOCAL enable_seqscan = off"))  # these few rows would be read whole
            raw = await (await session.connection()).get_raw_connection()
            [[plan]] = await raw.driver_connection.fetch(f"EXPLAIN (FORMAT JSON) {count}", due[-1])
    finally:
        await engine.dispose()
    assert none_yet == 0
    assert overdue_later == len([moment for moment in due if moment < due[-1]])
    assert "ix_outreach_tasks_open_due" in json.dumps(json.loads(plan) if isinstance(plan, str) else plan)


async def test_the_gauges_reclaim_the_changes_they_fold_where_autovacuum_does_not(postgres_url: str) -> None:
    """Each fold deletes the changes since the last; without a VACUUM their dead rows piled up for ever on a server
    without autovacuum, and every fold read them all again."""
    desk, engine = await open_desk(postgres_url)
    scheduler = desk.scheduler()
    table = CaseCountChange.__tablename__

    async def size() -> int:
        async with engine.connect() as connection:
            return int(await connection.scalar(text(f"SELECT pg_relation_size('{table}')")))

    try:
        async with engine.connect() as connection:
            await connection.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
            await connection.commit()
            # Other tests' rows gone: every minute below starts from the same table.
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text(f"VACUUM {table}"))
        await desk.receive(diagnosis())
        with_a_minute_of_changes = []
        for _ in range(6):
            # A busy minute's changes, as a consumer's insert statements and its cases' closing leave them.
            async with transaction(desk.sessions) as session:
                await session.execute(insert(CaseCountChange), [{"status": "open", "change": 1}] * 1000)
                await session.execute(insert(CaseCountChange), [{"status": "open", "change": -1}] * 1000)
            with_a_minute_of_changes.append(await size())
            await scheduler.refresh_gauges()
        opened = metrics.CASES.labels("open")._value.get()
    finally:
        async with engine.begin() as connection:
            await connection.execute(text(f"ALTER TABLE {table} RESET (autovacuum_enabled)"))
        await engine.dispose()
    assert opened == 1
    # Each minute's rows take the space of the last minute's, folded and reclaimed; without that, each minute adds
    # as much again.
    first, *_, last = with_a_minute_of_changes
    assert last <= 1.5 * first, f"the table kept growing as the gauge folded it: {with_a_minute_of_changes} bytes"
