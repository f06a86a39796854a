"""Diagnosis's HTTP layer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError

from services.diagnosis import service
from services.diagnosis.answers import AnswerRejected, record_answers
from services.diagnosis.rules import Rules
from services.diagnosis.schemas import (
    AccountSignals,
    AnswersAccepted,
    AnswersIn,
    DiagnosisView,
    QuestionView,
    SignalsAccepted,
)
from services.diagnosis.signals import store_signals
from shared.auth import UNAUTHORIZED
from shared.deps import SessionDep
from shared.events import DiagnosisCompleted, Identifier

router = APIRouter(prefix="/v1", tags=["diagnosis"])
AccountId = Path(description="`<source>:<billing customer id>` or your own id")


def _rules(request: Request) -> Rules:
    rules: Rules = request.app.state.rules
    return rules


RulesDep = Annotated[Rules, Depends(_rules)]


@router.put(
    "/accounts/{account_id}/signals",
    response_model=SignalsAccepted,
    responses={**UNAUTHORIZED, 422: {"description": "A signal is invalid or unknown; the reason names it"}},
    summary="Report what you know about an account; the groups sent replace the stored ones",
)
async def put_signals(
    signals: AccountSignals, session: SessionDep, request: Request, account_id: Identifier = AccountId
) -> SignalsAccepted:
    return await store_signals(
        session, account_id=account_id, signals=signals, correlation_id=request.scope["state"]["correlation_id"]
    )


@router.get(
    "/accounts/{account_id}/diagnosis",
    response_model=DiagnosisView,
    responses={**UNAUTHORIZED, 404: {"description": "No diagnosis for this account yet"}},
    summary="The latest diagnosis of an account, with its explanation",
)
async def get_diagnosis(session: SessionDep, account_id: Identifier = AccountId) -> DiagnosisView:
    found = await service.latest_diagnosis(session, account_id)
    if found is None:
        raise HTTPException(404, f"no diagnosis for account {account_id!r}")
    return DiagnosisView(
        account_id=found.account_id,
        version=found.version,
        created_at=found.created_at,
        diagnosis=DiagnosisCompleted.model_validate(found.explanation),
    )


@router.post(
    "/accounts/{account_id}/answers",
    response_model=AnswersAccepted,
    responses={
        **UNAUTHORIZED,
        422: {"description": "An unknown question id, a value outside the question's choices, or a bad field"},
    },
    summary="Record answers to discovery questions; they become evidence and an open case is diagnosed again",
)
async def post_answers(
    body: AnswersIn, session: SessionDep, rules: RulesDep, request: Request, account_id: Identifier = AccountId
) -> AnswersAccepted:
    try:
        return await record_answers(
            session,
            account_id=account_id,
            body=body,
            rules=rules,
            correlation_id=request.scope["state"]["correlation_id"],
        )
    except AnswerRejected as error:
        loc = ("body", *(int(part) if part.isdigit() else part for part in error.field.split(".")))
        raise RequestValidationError([{"loc": loc, "msg": error.problem, "type": "value_error"}]) from None


@router.get(
    "/questions",
    response_model=list[QuestionView],
    responses={**UNAUTHORIZED},
    summary="Every discovery question the rules can ask, with its id and choices",
)
async def get_questions(rules: RulesDep) -> list[QuestionView]:
    return [
        QuestionView(id=question.id, root_cause=name, text=question.text, choices=list(question.choices))
        for name, cause in rules.root_causes.items()
        for question in cause.questions
    ]
