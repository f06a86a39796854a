"""Outreach's hot paths stay cheap: SQL statements per new case and per fired escalation, on PostgreSQL.

Each statement is a round trip to the database; these are ceilings, so a change that adds one shows here.
BEGIN and COMMIT are not counted (the cursor hook does not see them).
"""

from __future__ import annotations

from tests.helpers import counting_statements
from tests.outreach_helpers import diagnosis, open_desk

# case lookup with early withdrawal, tried recently, the people who may own it, rotations, one insert per table (5)
NEW_CASE_STATEMENTS = 9
# due timer with case and task, claim, position, the people (the owner's managers), rotation, case update,
# inserts (4), outcome
ESCALATION_STATEMENTS = 11


async def test_a_new_case_and_its_first_escalation_take_few_statements(postgres_url: str) -> None:
    desk, engine = await open_desk(postgres_url, channels=("slack", "webhook"))
    try:
        await desk.receive(diagnosis())  # the rotation cursors exist from now on, as in a running service
        with counting_statements(engine) as statements:
            # No account owner: the case's CSM comes from the rotation, the offer step from the CS managers'.
            await desk.receive(diagnosis(root_cause="poor_implementation", account_owner=None, priority=90))
        assert len(statements) <= NEW_CASE_STATEMENTS, "\n".join(statements)

        desk.clock.advance(hours=4 + 24)  # the first step of both cases is due and unanswered
        with counting_statements(engine) as statements:
            fired = await desk.tick()
        assert [item.outcome for item in fired] == ["escalated", "escalated"]
        nothing_left_due = 1
        assert len(statements) <= 2 * ESCALATION_STATEMENTS + nothing_left_due, "\n".join(statements)
    finally:
        await engine.dispose()
