"""Diagnosis's HTTP layer."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Request

from services.diagnosis import service
from services.diagnosis.schemas import AccountSignals, DiagnosisView, SignalsAccepted
from services.diagnosis.signals import store_signals
from shared.auth import UNAUTHORIZED
from shared.deps import SessionDep
from shared.events import DiagnosisCompleted

router = APIRouter(prefix="/v1", tags=["diagnosis"])
AccountId = Path(min_length=1, max_length=255, description="`<source>:<billing customer id>` or your own id")


@router.put(
    "/accounts/{account_id}/signals",
    response_model=SignalsAccepted,
    responses={**UNAUTHORIZED, 422: {"description": "A signal is invalid or unknown; the reason names it"}},
    summary="Report what you know about an account; the groups sent replace the stored ones",
)
async def put_signals(
    signals: AccountSignals, session: SessionDep, request: Request, account_id: str = AccountId
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
async def get_diagnosis(session: SessionDep, account_id: str = AccountId) -> DiagnosisView:
    found = await service.latest_diagnosis(session, account_id)
    if found is None:
        raise HTTPException(404, f"no diagnosis for account {account_id!r}")
    return DiagnosisView(
        account_id=found.account_id,
        version=found.version,
        created_at=found.created_at,
        diagnosis=DiagnosisCompleted.model_validate(found.explanation),
    )
