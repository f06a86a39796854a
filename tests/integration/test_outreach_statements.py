"""Outreach's hot paths stay cheap: SQL statements per new case and per fired escalation, on PostgreSQL.

Each statement is a round trip to the database; these are ceilings, so a change that adds one shows here.
BEGIN and COMMIT are not counted (the cursor hook does not see them).
"""

from __future__ import annotations

from tests.helpers import counting_statements
from tests.outreach_helpers import diagnosis, open_desk

# case lookup with early withdrawal and whether anything was done for the account lately (a new account: nothing, so
# what was tried is not asked), the people (who may own it, their time zones and channels: read once per
# transaction), the rotations of more than one person, one insert per table (5)
NEW_CASE_STATEMENTS = 8
# due timer with case and task, claim, open rung tasks, the people (the owner's managers), the new owner as a person,
# position, rotation, case update,
# inserts (4), outcome
ESCALATION_STATEMENTS = 12


async def test_a_new_case_and_its_first_escalation_take_few_statements(postgres_url: str) -> None:
    desk, engine = await open_desk(postgres_url, channels=("slack", "webhook"))
    try:
        await desk.receive(diagnosis())  # the rotation cursors exist from now on, as in a running service
        with counting_statements(engine) as statements:
            # No account owner: the case's CSM comes from the rotation, the offer step from the CS managers'.
            await desk.receive(diagnosis(root_cause="poor_implementation", account_owner=None, priority=90))
        assert len(statements) <= NEW_CASE_STATEMENTS, "\n".join(statements)

        for case in await desk.open_cases():  # the first call of both cases goes unanswered
            await desk.complete((await desk.open_task(case.id)).id, "no_answer")
        desk.clock.advance(hours=4)  # the first rung's delay, counted in working hours
        with counting_statements(engine) as statements:
            fired = await desk.tick()
        assert [item.outcome for item in fired if item.rung] == ["escalated", "escalated"]
        nothing_left_due = 1
        assert len(statements) <= 2 * ESCALATION_STATEMENTS + nothing_left_due, "\n".join(statements)
    finally:
        await engine.dispose()
