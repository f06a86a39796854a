"""Outreach's HTTP layer."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Query

from services.outreach import service
from services.outreach.schemas import CaseDetail, CaseList, CaseView
from shared.auth import UNAUTHORIZED
from shared.deps import SessionDep

router = APIRouter(prefix="/v1", tags=["cases"])

CaseStatus = Literal["open", "saved", "lost", "moved_on"]


@router.get("/cases", response_model=CaseList, responses=UNAUTHORIZED, summary="Cases, newest first")
async def list_cases(session: SessionDep, status: CaseStatus | None = None,
                     limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0)) -> CaseList:
    cases = await service.list_cases(session, status=status, limit=limit, offset=offset)
    return CaseList(items=[CaseView.model_validate(case) for case in cases], limit=limit, offset=offset)


@router.get("/cases/{case_id}", response_model=CaseDetail,
            responses={**UNAUTHORIZED, 404: {"description": "No such case"}}, summary="One case with its diagnosis")
async def get_case(case_id: str, session: SessionDep) -> CaseDetail:
    case = await service.get_case(session, case_id)
    if case is None:
        raise HTTPException(404, f"no case {case_id!r}")
    return CaseDetail.model_validate(case)
