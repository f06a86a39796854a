"""Learning from how cases end, through the real broker and both databases: confirmed closes are kept, their
save rates switch the recommended playbook once enough closed, and `make eval FROM_DB=1` scores the rules on them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from services.diagnosis.evaluation import from_db
from services.diagnosis.models import Attempt, ConfirmedCase
from shared.events import CancellationReceived, CaseClosed
from tests.conftest import eventually
from tests.diagnosis_helpers import Diagnosis, cancellation, running_diagnosis

MIN_CASES = 3


def stalled_setup() -> CancellationReceived:
    """A cancellation diagnosed as poor implementation from its words alone."""
    return cancellation(feedback="too_expensive", comment="We never got it set up, so we saw no value at all.")


def closed(event: CancellationReceived, *, outcome: str, playbook: str, confirmed: str) -> CaseClosed:
    return CaseClosed(
        case_id=f"case-{uuid.uuid4().hex[:10]}",
        cancellation_id=event.cancellation_id,
        account_id=event.account_id,
        outcome=outcome,
        root_cause="poor_implementation",
        confirmed_root_cause=confirmed,
        playbook=playbook,
        closed_at=datetime.now(UTC),
    )


async def _kept(diagnosis: Diagnosis, case_ids: list[str]) -> bool:
    async with diagnosis.app.state.runtime.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(ConfirmedCase).where(ConfirmedCase.case_id.in_(case_ids))
        )
    return count == len(case_ids)


async def test_confirmed_closes_switch_the_playbook_to_the_one_that_saves_more(
    database_url: str, amqp_url: str
) -> None:
    endings = [
        ("saved", "poor_implementation"),
        ("lost", "poor_implementation"),
        ("lost", "poor_implementation"),
        ("saved", "rocky_onboarding"),
        ("saved", "rocky_onboarding"),
        ("saved", "rocky_onboarding"),
        ("stayed_unprompted", "rocky_onboarding"),  # stayed before any touch: says nothing of the playbook
    ]
    async with running_diagnosis(
        database_url=database_url, amqp_url=amqp_url, learning_min_cases=MIN_CASES, learning_refresh_seconds=0
    ) as diagnosis:
        before = stalled_setup()
        await diagnosis.publish(before)
        [first] = await diagnosis.completed_for(before.cancellation_id)
        mine = []
        # The last one is confirmed as unknown: kept, but neither scored nor counted in a save rate.
        for outcome, playbook, confirmed in [(o, p, "poor_implementation") for o, p in endings] + [
            ("lost", "poor_implementation", "unknown")
        ]:
            event = stalled_setup()
            await diagnosis.publish(event)
            await diagnosis.completed_for(event.cancellation_id)
            ending = closed(event, outcome=outcome, playbook=playbook, confirmed=confirmed)
            mine.append(ending.case_id)
            await diagnosis.publish(ending)
        await eventually(lambda: _kept(diagnosis, mine))

        after = stalled_setup()
        await diagnosis.publish(after)
        [learnt] = await diagnosis.completed_for(after.cancellation_id)
        cases, records = await from_db.read(database_url)
        cases = [case for case in cases if case.case_id in mine]  # other tests share the database

    assert first["root_cause"] == "poor_implementation"
    assert first["recommended_playbook"] == "poor_implementation" and first["playbook_choice"] is None
    assert learnt["root_cause"] == "poor_implementation" and learnt["verdict"]["decision"] == "pursue"
    assert learnt["recommended_playbook"] == "rocky_onboarding"
    choice = learnt["playbook_choice"]
    assert (choice["playbook"], choice["save_rate"], choice["closed_cases"]) == ("rocky_onboarding", 1.0, 3)
    assert choice["reason"] == (
        "rocky_onboarding saved 3 of 3 (100%) of the cases confirmed as poor_implementation, where "
        "poor_implementation saved 1 of 3 (33%): switched to the one that saves more"
    )
    assert {(c["playbook"], c["saved"], c["closed"]) for c in choice["compared"]} == {
        ("poor_implementation", 1, 3),
        ("rocky_onboarding", 3, 3),
    }

    # `make eval FROM_DB=1` on the same database: the rules scored on what people confirmed, and the rates.
    text = from_db.report(cases, records, from_db.load_rules(), MIN_CASES)
    assert "confirmed cases: 8 (1 confirmed as unknown, not scored)" in text
    assert "root cause top-1 accuracy: 100.0%" in text
    assert any(
        line.split()[:5] == ["poor_implementation", "rocky_onboarding", "3", "3", "100%"] for line in text.splitlines()
    )
    assert "fitted model: not fitted" in text  # 7 scored cases are too few to fit anything


async def test_a_close_without_a_confirmed_root_cause_is_not_kept(database_url: str, amqp_url: str) -> None:
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        event = stalled_setup()
        await diagnosis.publish(event)
        await diagnosis.completed_for(event.cancellation_id)
        unconfirmed = closed(event, outcome="lost", playbook="poor_implementation", confirmed="unknown")
        await diagnosis.publish(unconfirmed.model_copy(update={"confirmed_root_cause": None}))
        confirmed = closed(stalled_setup(), outcome="saved", playbook="poor_implementation", confirmed="known_issue")
        await diagnosis.publish(confirmed)
        # The unconfirmed close is on record as an attempt once handled; the confirmed one is kept.
        await eventually(lambda: _handled(diagnosis, f"case:{unconfirmed.case_id}"))
        await eventually(lambda: _kept(diagnosis, [confirmed.case_id]))
        mine = select(ConfirmedCase).where(ConfirmedCase.case_id.in_((unconfirmed.case_id, confirmed.case_id)))
        async with diagnosis.app.state.runtime.sessions() as session:
            found = list((await session.execute(mine)).scalars())
    assert [(c.case_id, c.confirmed_root_cause) for c in found] == [(confirmed.case_id, "known_issue")]


async def _handled(diagnosis: Diagnosis, attempt_id: str) -> bool:
    async with diagnosis.app.state.runtime.sessions() as session:
        return bool(
            await session.scalar(select(func.count()).select_from(Attempt).where(Attempt.attempt_id == attempt_id))
        )
