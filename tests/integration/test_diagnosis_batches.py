"""Cancellation reports that arrive together are diagnosed in one go, as they would be one after another."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from services.diagnosis import consumers, service
from services.diagnosis.models import Diagnosis, outbox
from services.diagnosis.rules import load_rules
from services.diagnosis.signals import write_group
from shared.db import make_engine, make_sessionmaker, utcnow
from shared.events import CancellationReceived, CancellationWithdrawn, Envelope
from tests.diagnosis_helpers import cancellation


def report_of(event: CancellationReceived, *, state_version: int, **changes: object) -> CancellationReceived:
    return event.model_copy(update={"state_version": state_version, **changes})


def withdrawal_of(event: CancellationReceived, *, state_version: int) -> CancellationWithdrawn:
    return CancellationWithdrawn(
        cancellation_id=event.cancellation_id,
        account_id=event.account_id,
        source=event.source,
        source_event_id="evt_withdrawn",
        source_event_type="customer.subscription.updated",
        customer_id=event.customer_id,
        state_version=state_version,
    )


async def test_reports_that_arrive_together_are_diagnosed_as_one_after_another(database_url: str) -> None:
    first = cancellation(feedback="too_expensive")
    account = first.account_id
    other = cancellation(feedback="unused").model_copy(update={"account_id": account})
    withdrawn = cancellation(feedback="unused").model_copy(update={"account_id": account})
    newer = report_of(first, state_version=2, comment="Our champion left and nobody else logs in.")
    arriving = [
        first,
        other,
        newer,
        first,  # a late copy of the older report: the newer one stays
        withdrawn,  # withdrawn before it arrived: never diagnosed
    ]
    correlation_id = uuid.uuid4().hex
    engine = make_engine(database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            now = utcnow()
            await write_group(
                session,
                account_id=account,
                kind="stakeholders",
                values={"champion_left": True},
                observed_at=now,
                source="crm",
                version=1,
                now=now,
            )
            await service.withdraw_cancellation(session, withdrawal_of(withdrawn, state_version=5))
            await consumers.on_cancellations_received(
                arriving,
                envelopes=[Envelope.wrap(event, correlation_id=correlation_id, source="test") for event in arriving],
                session=session,
                rules=load_rules(),
            )
            diagnoses = list(
                await session.execute(
                    select(Diagnosis.cancellation_id, Diagnosis.version, Diagnosis.explanation)
                    .where(Diagnosis.account_id == account)
                    .order_by(Diagnosis.created_at)
                )
            )
            events = list(
                await session.scalars(
                    select(outbox.c.body).where(outbox.c.correlation_id == correlation_id).order_by(outbox.c.id)
                )
            )
            await session.rollback()
    finally:
        await engine.dispose()

    assert [(row.cancellation_id, row.version) for row in diagnoses] == [
        (first.cancellation_id, 1),
        (other.cancellation_id, 1),
        (first.cancellation_id, 2),
        (first.cancellation_id, 3),
    ]
    assert [Envelope.from_bytes(body.encode()).data for body in events] == [row.explanation for row in diagnoses]
    said = [(row.explanation["state_version"], row.explanation["comment"]) for row in diagnoses]
    assert said == [(1, None), (1, None), (2, newer.comment), (2, newer.comment)]
    # Each one weighed the account's signals.
    assert all(row.explanation["signal_version"] == 1 for row in diagnoses)
    assert diagnoses[2].explanation["root_cause"] == "champion_left"
