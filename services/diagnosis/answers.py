"""Answers to discovery questions: checked against the rules' questions, kept as evidence, re-diagnosed."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import repository
from services.diagnosis.engine import ANSWERS
from services.diagnosis.rules import Rules
from services.diagnosis.schemas import AnswersAccepted, AnswersIn
from services.diagnosis.signals import rediagnose_if_open, write_group
from shared.db import utcnow
from shared.logs import get_logger

log = get_logger("diagnosis.answers")
# Clocks differ a little between the desk, a CRM and us; an answer from further ahead is a mistake.
FUTURE_TOLERANCE = timedelta(minutes=5)


class AnswerRejected(ValueError):
    """An answer names no known question, or a value outside the question's choices; ``field`` says which."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _checked(body: AnswersIn, rules: Rules, now: datetime) -> dict[str, dict[str, str]]:
    """The answers by question id, each value in its question's own spelling; AnswerRejected otherwise."""
    checked: dict[str, dict[str, str]] = {}
    for index, answer in enumerate(body.answers):
        where = f"answers.{index}"
        asked = rules.question(answer.question_id)
        if asked is None:
            raise AnswerRejected(f"{where}.question_id", f"no question has the id {answer.question_id!r}")
        if answer.question_id in checked:
            raise AnswerRejected(f"{where}.question_id", f"{answer.question_id!r} is answered twice in this request")
        question = asked[1]
        value = answer.value.strip()
        if question.choices:
            choice = question.choice(value)
            if choice is None:
                raise AnswerRejected(f"{where}.value", f"choose one of {', '.join(map(repr, question.choices))}")
            value = choice
        elif not value:
            raise AnswerRejected(f"{where}.value", "the answer is blank")
        answered_at = answer.answered_at or now
        if answered_at > now + FUTURE_TOLERANCE:
            raise AnswerRejected(f"{where}.answered_at", "is in the future")
        checked[answer.question_id] = {
            "value": value,
            "answered_by": answer.answered_by,
            "answered_at": answered_at.isoformat(),
        }
    return checked


async def record_answers(
    session: AsyncSession, *, account_id: str, body: AnswersIn, rules: Rules, correlation_id: str
) -> AnswersAccepted:
    """Keep each answer (unless a later answer to the same question is stored) and re-diagnose an open case."""
    now = utcnow()
    answers = _checked(body, rules, now)
    stored = await repository.locked_signal_rows(session, account_id, kind=ANSWERS)
    kept = dict(stored[ANSWERS].values or {})
    recorded, stale = [], []
    for question_id, answer in answers.items():
        earlier = kept.get(question_id)
        if earlier and datetime.fromisoformat(earlier["answered_at"]) > datetime.fromisoformat(answer["answered_at"]):
            stale.append(question_id)  # a late, older answer never undoes a newer one
            continue
        kept[question_id] = answer
        recorded.append(question_id)
    version = max(row.signal_version for row in stored.values()) + (1 if recorded else 0)
    if recorded:
        await write_group(
            session,
            account_id=account_id,
            kind=ANSWERS,
            values=kept,
            observed_at=max(datetime.fromisoformat(a["answered_at"]) for a in kept.values()),
            source="answers",
            version=version,
            now=now,
        )
    log.info("diagnosis.answers.recorded", account_id=account_id, recorded=recorded, stale=stale)
    rediagnosing = await rediagnose_if_open(
        session,
        account_id=account_id,
        version=version,
        kinds=[ANSWERS] if recorded else [],
        correlation_id=correlation_id,
    )
    return AnswersAccepted(
        account_id=account_id, signal_version=version, recorded=recorded, stale=stale, rediagnosing=rediagnosing
    )
