"""Round trips per message: each SQL statement is one, and under load they are most of diagnosis's cost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from services.diagnosis import consumers
from services.diagnosis.rules import load_rules
from shared.db import make_engine, make_sessionmaker
from shared.events import Envelope, InterventionLogged
from tests.diagnosis_helpers import cancellation
from tests.helpers import counting_statements

# A new cancellation: claim it and read signals and attempts (one statement), write the diagnosis and stage its
# event (one statement).
NEW_CANCELLATION_STATEMENTS = 2
# A failed intervention: record it, read the open cancellations and the history, write and stage.
FAILED_INTERVENTION_STATEMENTS = 4


async def test_a_new_cancellation_and_a_failed_intervention_take_few_statements(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    received = cancellation(feedback="missing_features", comment="We need something that works offline.")
    failed = InterventionLogged(
        intervention_id=uuid.uuid4().hex,
        case_id="case-1",
        cancellation_id=received.cancellation_id,
        account_id=received.account_id,
        action="honest_fit_review",
        result="failed",
        performed_at=datetime.now(UTC),
    )
    try:
        async with engine.connect():
            pass  # the first connection's own queries (server version and so on) are not the handler's
        # One transaction, rolled back: the staged events must not reach other tests sharing this database.
        async with sessions() as session:
            with counting_statements(engine) as first:
                await consumers.on_cancellation_received(
                    received,
                    envelope=Envelope.wrap(received, correlation_id="c1", source="test"),
                    session=session,
                    rules=load_rules(),
                )
            with counting_statements(engine) as second:
                await consumers.on_intervention_logged(
                    failed,
                    envelope=Envelope.wrap(failed, correlation_id="c2", source="test"),
                    session=session,
                    rules=load_rules(),
                )
            await session.rollback()
    finally:
        await engine.dispose()

    assert len(first) <= NEW_CANCELLATION_STATEMENTS, first
    assert len(second) <= FAILED_INTERVENTION_STATEMENTS, second
    assert sum("diagnosis_outbox" in statement for statement in first + second) == 2  # each one was diagnosed
