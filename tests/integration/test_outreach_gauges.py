"""The overdue-task gauge counts what is overdue by reading only that: a count that read every open task grew with
every case that stayed open, and once a minute pushed the rest of the database out of PostgreSQL's buffers."""

from __future__ import annotations

import json

from sqlalchemy import text

from services.outreach import repository
from shared.db import transaction
from tests.helpers import counting_statements
from tests.outreach_helpers import diagnosis, open_desk


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
