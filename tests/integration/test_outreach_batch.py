"""Diagnoses that arrive together are placed as if they had come one at a time: where each belongs is read for the
whole batch in one statement (PostgreSQL), except for those whose subscription or account another diagnosis of the
batch concerns, which read theirs when their turn comes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.outreach.consumers import on_diagnoses_completed
from shared.db import transaction
from shared.events import DiagnosisCompleted, Envelope
from tests.outreach_helpers import Desk, diagnosis, open_desk, withdrawal


@pytest.fixture
async def desk(database_url: str) -> AsyncIterator[Desk]:
    desk, engine = await open_desk(database_url)
    yield desk
    await engine.dispose()


async def handle_together(desk: Desk, payloads: list[DiagnosisCompleted]) -> None:
    envelopes = [
        Envelope.wrap(payload, correlation_id=f"batch-{n}", source="diagnosis") for n, payload in enumerate(payloads)
    ]
    async with transaction(desk.sessions) as session:
        await on_diagnoses_completed(
            payloads, envelopes=envelopes, session=session, policy=desk.policy, clock=desk.clock
        )


async def test_a_batch_opens_updates_and_ignores_each_diagnosis_as_alone(desk: Desk) -> None:
    open_one = diagnosis(root_cause="payment_failure", state_version=1_000)
    open_id = await desk.receive(open_one)
    saved = diagnosis(state_version=1_000)
    saved_id = await desk.receive(saved)
    await desk.withdraw(withdrawal(saved, state_version=2_000))
    [(closed_id, closed_as)] = [(case.id, case.status) for case in await desk.cases_of(saved.cancellation_id)]
    overtaken = diagnosis(state_version=1_000)
    await desk.withdraw(withdrawal(overtaken, state_version=2_000))  # before its diagnosis
    new = diagnosis(root_cause="rocky_onboarding")
    same_account = diagnosis(account_id=new.account_id)  # another subscription of the same account, in the batch

    newer_version = open_one.model_copy(update={"diagnosis_version": 2, "root_cause": "missing_feature"})
    late_copy = saved.model_copy(update={"diagnosis_version": 2})
    await handle_together(desk, [newer_version, late_copy, overtaken, new, same_account])

    [updated] = await desk.cases_of(open_one.cancellation_id)
    assert (updated.id, updated.status, updated.diagnosis_version, updated.root_cause) == (
        open_id,
        "open",
        2,
        "missing_feature",
    )
    assert closed_id == saved_id and closed_as != "open"
    assert [(case.id, case.status) for case in await desk.cases_of(saved.cancellation_id)] == [(saved_id, closed_as)]
    [stayed] = await desk.cases_of(overtaken.cancellation_id)
    assert (stayed.status, await desk.tasks(stayed.id)) == ("stayed_unprompted", [])
    for opened in (new, same_account):
        [case] = await desk.cases_of(opened.cancellation_id)
        assert case.status == "open" and await desk.tasks(case.id, status="open")
    assert len(await desk.open_cases()) == 3  # open_one's, new's and same_account's: no second case anywhere
