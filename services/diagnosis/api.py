"""Diagnosis's HTTP layer."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from services.diagnosis import service
from services.diagnosis.schemas import DiagnosisView
from shared.auth import UNAUTHORIZED
from shared.deps import SessionDep
from shared.events import DiagnosisCompleted

router = APIRouter(prefix="/v1", tags=["diagnosis"])


@router.get("/accounts/{account_id}/diagnosis", response_model=DiagnosisView,
            responses={**UNAUTHORIZED, 404: {"description": "No diagnosis for this account yet"}},
            summary="The latest diagnosis of an account, with its explanation")
async def get_diagnosis(account_id: str, session: SessionDep) -> DiagnosisView:
    found = await service.latest_diagnosis(session, account_id)
    if found is None:
        raise HTTPException(404, f"no diagnosis for account {account_id!r}")
    return DiagnosisView(account_id=found.account_id, version=found.version, created_at=found.created_at,
                         diagnosis=DiagnosisCompleted.model_validate(found.explanation))
