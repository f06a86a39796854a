"""Answers to discovery questions and notes on completed tasks: evidence that re-diagnoses, on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.events import InterventionLogged
from tests.diagnosis_helpers import AUTH, Diagnosis, cancellation, running_diagnosis


async def answer(diagnosis: Diagnosis, account_id: str, *answers: dict[str, Any], **headers: str) -> httpx.Response:
    return await diagnosis.client.post(
        f"/v1/accounts/{account_id}/answers", json={"answers": list(answers)}, headers=headers or AUTH
    )


def said(question_id: str, value: str, **more: Any) -> dict[str, Any]:
    return {"question_id": question_id, "value": value, "answered_by": "sam@example.com", **more}


def problems(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    return {issue["field"]: issue["problem"] for issue in response.json()["errors"]}


async def test_answers_need_a_bearer_token(database_url: str, amqp_url: str) -> None:
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        missing = await diagnosis.client.post(
            "/v1/accounts/stripe:cus_1/answers", json={"answers": [said("implementer_on_board", "no")]}
        )
        wrong = await answer(
            diagnosis, "stripe:cus_1", said("implementer_on_board", "no"), Authorization="Bearer not-a-token"
        )
    assert missing.status_code == 401 and wrong.status_code == 401


async def test_bad_answers_are_422_naming_the_field(database_url: str, amqp_url: str) -> None:
    account = "stripe:cus_answers_422"
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        unknown = await answer(diagnosis, account, said("implementer_on_board", "no"), said("favourite_colour", "red"))
        off_the_list = await answer(diagnosis, account, said("implementer_on_board", "perhaps"))
        twice = await answer(diagnosis, account, said("owner_now", "Kim"), said("owner_now", "Lee"))
        future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        ahead = await answer(diagnosis, account, said("owner_now", "Kim", answered_at=future))
        naive = await answer(diagnosis, account, said("owner_now", "Kim", answered_at="2026-11-01T10:00:00"))
        nobody = await answer(diagnosis, account, {"question_id": "owner_now", "value": "Kim"})
        blank = await answer(diagnosis, account, said("owner_now", "   "))
        too_long = await answer(diagnosis, account, said("owner_now", "x" * 2001))
        none = await answer(diagnosis, account)
        stored = await diagnosis.client.get("/v1/accounts/stripe:cus_answers_422/diagnosis", headers=AUTH)

    assert problems(unknown) == {"answers.1.question_id": "no question has the id 'favourite_colour'"}
    assert problems(off_the_list) == {"answers.0.value": "choose one of 'yes', 'no', 'not sure'"}
    assert "answered twice" in problems(twice)["answers.1.question_id"]
    assert problems(ahead) == {"answers.0.answered_at": "is in the future"}
    assert "timezone" in problems(naive)["answers.0.answered_at"].lower()
    assert "required" in problems(nobody)["answers.0.answered_by"].lower()
    assert problems(blank) == {"answers.0.value": "the answer is blank"}
    assert "at most 2000" in problems(too_long)["answers.0.value"]
    assert "at least 1" in problems(none)["answers"]
    assert stored.status_code == 404  # nothing was stored by any of them


async def test_answers_become_evidence_and_a_new_diagnosis_version(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="unused", comment="It just didn't stick.")
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.publish(event)
        [first] = await diagnosis.completed_for(event.cancellation_id)
        asks = [ask for unknown in first["unknowns"] for ask in unknown["asks"]]
        accepted = await answer(
            diagnosis,
            event.account_id,
            said("implementer_on_board", "No "),  # a choice, in any case and spacing
            said("implementer", "Marta, the operations manager"),
        )
        second = (await diagnosis.completed_for(event.cancellation_id, count=2))[1]
        questions = await diagnosis.client.get("/v1/questions", headers=AUTH)

    # Every unknown carries its questions with ids, and the choices where there are any.
    assert first["unknowns"] and all(unknown["asks"] for unknown in first["unknowns"])
    assert all(ask["id"] and ask["text"] for ask in asks)
    assert first["root_cause"] != "stakeholders_not_bought_in"
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert body["rediagnosing"] is True and sorted(body["recorded"]) == ["implementer", "implementer_on_board"]
    assert second["signal_version"] == body["signal_version"]
    assert second["root_cause"] == "stakeholders_not_bought_in"
    [weighed] = [e for e in second["hypotheses"][0]["evidence"] if e["signal"] == "answer.implementer_on_board"]
    assert weighed["weight"] > 0 and "'no'" in weighed["detail"] and "sam@example.com" in weighed["detail"]
    still_asked = {ask["id"] for unknown in second["unknowns"] for ask in unknown["asks"]}
    assert not still_asked & {"implementer", "implementer_on_board"}  # answered questions are not asked again
    listed = {q["id"]: q for q in questions.json()}
    assert listed["implementer_on_board"] == {
        "id": "implementer_on_board",
        "root_cause": "stakeholders_not_bought_in",
        "text": "Was the person tasked with implementing it on board with the purchase?",
        "choices": ["yes", "no", "not sure"],
    }


async def test_a_free_text_answer_is_read_like_a_note_and_a_later_answer_wins(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="other", comment="We don't need it any more.")
    then = datetime.now(UTC) - timedelta(hours=2)
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.publish(event)
        await diagnosis.completed_for(event.cancellation_id)
        newer = await answer(diagnosis, event.account_id, said("owner_now", "Nobody: Kim, our admin, left the company"))
        older = await answer(
            diagnosis, event.account_id, said("owner_now", "Kim still runs it", answered_at=then.isoformat())
        )
        second = (await diagnosis.completed_for(event.cancellation_id, count=2))[1]

    assert newer.json()["recorded"] == ["owner_now"]
    assert older.json()["recorded"] == [] and older.json()["stale"] == ["owner_now"]
    assert older.json()["rediagnosing"] is False
    assert second["root_cause"] == "champion_left"
    assert any(e["signal"] == "answer.owner_now" for e in second["hypotheses"][0]["evidence"])


async def test_a_note_written_when_completing_a_task_reaches_diagnosis(database_url: str, amqp_url: str) -> None:
    event = cancellation(feedback="too_expensive", comment="Hard to justify the cost.")
    note = "Spoke to Dana: the IT lead tasked with implementing it was never on board with the purchase."
    async with running_diagnosis(database_url=database_url, amqp_url=amqp_url) as diagnosis:
        await diagnosis.publish(event)
        [first] = await diagnosis.completed_for(event.cancellation_id)
        await diagnosis.publish(
            InterventionLogged(
                intervention_id=uuid.uuid4().hex,
                case_id="case-1",
                cancellation_id=event.cancellation_id,
                account_id=event.account_id,
                action="call",
                result="reached",
                note=note,
                performed_by="sam@example.com",
                performed_at=datetime.now(UTC),
            )
        )
        second = (await diagnosis.completed_for(event.cancellation_id, count=2))[1]

    assert first["root_cause"] != "stakeholders_not_bought_in"
    assert second["root_cause"] == "stakeholders_not_bought_in"
    [weighed] = [e for e in second["hypotheses"][0]["evidence"] if e["signal"] == "relationship_note"]
    assert "never on board" in weighed["detail"]
