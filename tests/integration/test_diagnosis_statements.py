"""Round trips per message: each SQL statement is one, and under load they are most of diagnosis's cost."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from services.diagnosis import consumers
from services.diagnosis.models import outbox
from services.diagnosis.rules import load_rules
from shared.db import make_engine, make_sessionmaker
from shared.events import Envelope, InterventionLogged
from tests.diagnosis_helpers import cancellation
from tests.helpers import counting_statements

# New cancellations that arrive together, however many: claim them and read their accounts' signals and attempts
# (one statement), write the diagnoses and stage their events (one statement).
NEW_CANCELLATIONS_STATEMENTS = 2
# A failed intervention: record it, read the open cancellations and the history, write and stage.
FAILED_INTERVENTION_STATEMENTS = 4


async def test_new_cancellations_and_a_failed_intervention_take_few_statements(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    sessions = make_sessionmaker(engine)
    received = [
        cancellation(feedback="missing_features", comment="We need something that works offline."),
        *(cancellation() for _ in range(9)),
    ]
    failed = InterventionLogged(
        intervention_id=uuid.uuid4().hex,
        case_id="case-1",
        cancellation_id=received[0].cancellation_id,
        account_id=received[0].account_id,
        action="honest_fit_review",
        result="failed",
        performed_at=datetime.now(UTC),
    )
    correlation_id = uuid.uuid4().hex
    try:
        async with engine.connect():
            pass  # the first connection's own queries (server version and so on) are not the handler's
        # One transaction, rolled back: the staged events must not reach other tests sharing this database.
        async with sessions() as session:
            with counting_statements(engine) as first:
                await consumers.on_cancellations_received(
                    received,
                    envelopes=[
                        Envelope.wrap(event, correlation_id=correlation_id, source="test") for event in received
                    ],
                    session=session,
                    rules=load_rules(),
                )
            with counting_statements(engine) as second:
                await consumers.on_intervention_logged(
                    failed,
                    envelope=Envelope.wrap(failed, correlation_id=correlation_id, source="test"),
                    session=session,
                    rules=load_rules(),
                )
            staged = await session.scalar(
                select(func.count()).select_from(outbox).where(outbox.c.correlation_id == correlation_id)
            )
            await session.rollback()
    finally:
        await engine.dispose()

    assert len(first) <= NEW_CANCELLATIONS_STATEMENTS, first
    assert len(second) <= FAILED_INTERVENTION_STATEMENTS, second
    assert staged == len(received) + 1  # each one was diagnosed, the first one twice
