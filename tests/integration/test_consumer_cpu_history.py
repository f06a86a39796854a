"""``bench.consumer_cpu --history``: the tables look as after earlier messages, and the consumer still works on them."""

from __future__ import annotations

import random
import subprocess
import sys

from bench.consumer_cpu import KINDS, add_history, arrivals, build_consumer, fresh_database


async def test_history_copies_every_domain_row_under_new_keys_that_still_name_each_other() -> None:
    async with fresh_database("postgres") as url:
        consumer, engine = build_consumer("outreach", url)
        try:
            rng = random.Random(7)
            assert (await consumer._handle_together(arrivals(KINDS["outreach"], 0, 8, rng))).count("handled") == 8
            await add_history(engine, "outreach", messages=24, batch=8)  # three copies of what the 8 wrote

            async with engine.connect() as connection:

                async def count(sql: str) -> int:
                    return (await connection.exec_driver_sql(sql)).scalar_one()

                assert await count("SELECT count(*) FROM outreach_cases") == 8 * 4
                assert await count("SELECT count(DISTINCT id) FROM outreach_cases") == 8 * 4
                assert await count("SELECT count(DISTINCT account_id) FROM outreach_cases") == 8 * 4
                tasks = await count("SELECT count(*) FROM outreach_tasks")
                assert tasks > 8 * 4 and tasks % 4 == 0
                orphans = (
                    "SELECT count(*) FROM outreach_tasks t LEFT JOIN outreach_cases c ON c.id = t.case_id "
                    "WHERE c.id IS NULL"
                )
                assert await count(orphans) == 0
                # Retention keeps these small whatever the history: they are left as the warm-up wrote them.
                assert await count("SELECT count(*) FROM outreach_handled_messages") == 8

            later = arrivals(KINDS["outreach"], 8, 8, rng)
            assert (await consumer._handle_together(later)).count("handled") == 8
        finally:
            await engine.dispose()


def test_history_is_refused_for_sqlite() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.consumer_cpu",
            "--consumer",
            "outreach",
            "--database",
            "sqlite",
            "--history",
            "5",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--history fills PostgreSQL tables only" in done.stderr
    assert "Traceback" not in done.stderr
