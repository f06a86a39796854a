"""What was tried, withdrawals, closed cases and the context source, through the real broker."""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from services.diagnosis.models import Attempt, Cancellation
from shared.events import CancellationWithdrawn, CaseClosed, InterventionLogged
from tests.conftest import eventually
from tests.diagnosis_helpers import Diagnosis, cancellation, context_server, now_iso, running_diagnosis


def group(**values: object) -> dict[str, object]:
    return {"observed_at": now_iso(), "source": "crm", **values}


async def status_of(diagnosis: Diagnosis, cancellation_id: str) -> str | None:
    async with diagnosis.app.state.runtime.sessions() as session:
        return await session.scalar(select(Cancellation.status).where(Cancellation.cancellation_id == cancellation_id))


def intervention(event, *, action: str, result: str, move: str | None = None) -> InterventionLogged:
    return InterventionLogged(
        intervention_id=uuid.uuid4().hex,
        case_id="case-1",
        cancellation_id=event.cancellation_id,
        account_id=event.account_id,
        action=action,
        result=result,
        note="call on Tuesday",
        performed_by="sam@example.com",
        performed_at=datetime.now(UTC),
        move=move,
    )


async def test_a_failed_honest_attempt_at_the_fit_moves_on_and_is_not_repeated(
    database_url: str, amqp_url: str
) -> None:
    event = cancellation(feedback="missing_features", comment="We need something that works offline.")
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.put_signals(event.account_id, {"usage": group(key_feature_adoption=0.7)})
        await diagnosis.publish(event)
        [first] = await diagnosis.completed_for(event.cancellation_id)
        # Outreach reports what was done (a call) and the move it made, in the rules' vocabulary.
        await diagnosis.publish(intervention(event, action="call", result="failed", move="honest_fit_review"))
        second = (await diagnosis.completed_for(event.cancellation_id, count=2))[1]

    assert first["root_cause"] == "wrong_fit" and first["verdict"]["decision"] == "pursue"
    assert first["recommended_playbook"] == "wrong_fit" and first["tried"] == []
    assert second["tried"] == ["honest_fit_review: failed"]
    assert second["avoid"] == ["honest_fit_review"]
    assert second["verdict"] == {"decision": "move_on", "reason": "wrong fit after an honest attempt", "priority": 0}
    assert second["recommended_playbook"] == "move_on"


async def test_a_successful_step_is_history_but_no_new_diagnosis(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="too_complex", comment="Nobody ever showed us how it works.")
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.publish(event)
        await diagnosis.completed_for(event.cancellation_id)
        await diagnosis.publish(intervention(event, action="retrain_team", result="done"))
        # Messages are handled concurrently; the test wants the success on record before the failure comes.
        await eventually(lambda: attempts_of(diagnosis, event.account_id, count=1))
        await diagnosis.publish(intervention(event, action="guided_setup", result="no_response"))
        versions = await diagnosis.completed_for(event.cancellation_id, count=2)

    latest = versions[-1]
    assert len(versions) == 2  # the successful step changed nothing to re-decide
    assert latest["tried"] == ["retrain_team: done", "guided_setup: no_response"]
    assert latest["avoid"] == ["guided_setup"]
    assert latest["recommended_playbook"] == "rocky_onboarding"  # one failed step does not exhaust the playbook


async def attempts_of(diagnosis: Diagnosis, account_id: str, *, count: int) -> bool:
    async with diagnosis.app.state.runtime.sessions() as session:
        recorded = await session.scalar(
            select(func.count()).select_from(Attempt).where(Attempt.account_id == account_id)
        )
    return recorded >= count


async def test_a_withdrawn_cancellation_is_not_diagnosed_again(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="unused")
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.publish(event)
        await diagnosis.completed_for(event.cancellation_id)
        await diagnosis.publish(
            CancellationWithdrawn(
                cancellation_id=event.cancellation_id,
                account_id=event.account_id,
                source="stripe",
                source_event_id="evt_w",
                source_event_type="customer.subscription.updated",
                customer_id=event.customer_id,
                state_version=2,
            )
        )
        await eventually(lambda: _is(diagnosis, event.cancellation_id, "withdrawn"))
        response = await diagnosis.put_signals(event.account_id, {"onboarding": group(completed=False)})
    assert response.json()["rediagnosing"] is False


async def test_a_closed_case_counts_as_tried_and_stops_rediagnosis(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="unused")
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.publish(event)
        await diagnosis.completed_for(event.cancellation_id)
        await diagnosis.publish(
            CaseClosed(
                case_id="case-7",
                cancellation_id=event.cancellation_id,
                account_id=event.account_id,
                outcome="lost",
                root_cause="poor_implementation",
                closed_at=datetime.now(UTC),
            )
        )
        await eventually(lambda: _is(diagnosis, event.cancellation_id, "closed"))
        response = await diagnosis.put_signals(event.account_id, {"onboarding": group(completed=True)})
    assert response.json()["rediagnosing"] is False


async def _is(diagnosis: Diagnosis, cancellation_id: str, status: str) -> bool:
    return await status_of(diagnosis, cancellation_id) == status


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_context_source_down_still_diagnoses_marked_incomplete(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="too_expensive")
    async with running_diagnosis(
        database_url=database_url,
        amqp_url=amqp_url,
        context_url=f"http://127.0.0.1:{closed_port()}",
        context_attempts=2,
        context_timeout_seconds=0.5,
    ) as diagnosis:
        await diagnosis.publish(event)
        [completed] = await diagnosis.completed_for(event.cancellation_id)
    assert completed["incomplete"] is True
    assert completed["symptom"] == "too_expensive" and completed["hypotheses"]


async def test_context_source_fills_in_what_nobody_pushed(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="too_expensive")
    known = {event.account_id: {"company": {"observed_at": now_iso(), "source": "dnb", "distress": True}}}
    with context_server(known) as url:
        async with running_diagnosis(database_url=database_url, amqp_url=amqp_url, context_url=url) as diagnosis:
            await diagnosis.publish(event)
            [completed] = await diagnosis.completed_for(event.cancellation_id)
    assert completed["incomplete"] is False
    assert completed["root_cause"] == "company_distress"
    assert completed["verdict"]["decision"] == "move_on" and completed["verdict"]["reason"] == "company distress"
    assert completed["hypotheses"][0]["evidence"][0]["signal"] == "company.distress"
