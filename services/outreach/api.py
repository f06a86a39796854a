"""Outreach's HTTP layer."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from services.outreach import offers, recipients, reports, service
from services.outreach.clock import Clock
from services.outreach.endings import CaseAlreadyClosed, OutcomeContradicted, close_by_hand
from services.outreach.policy import Policy
from services.outreach.schemas import (
    ApplyOffer,
    ApproveOffer,
    CaseDetail,
    CaseList,
    CaseView,
    CompleteTask,
    NotificationChoice,
    OfferBudget,
    OfferList,
    OfferView,
    ProposeOffer,
    RecordOutcome,
    RejectOffer,
    ReportSummary,
    TaskList,
    TaskView,
    UndoOffer,
)
from services.outreach.tasks import TaskNotFound, TaskNotOpen, complete_task, list_tasks
from shared.auth import UNAUTHORIZED
from shared.deps import SessionDep
from shared.events import Timestamp

# Deep paging is refused with a reason rather than overflowing the database's integer.
MAX_OFFSET = 1_000_000

router = APIRouter(prefix="/v1", tags=["outreach"])

CaseStatus = Literal["open", "saved", "stayed_unprompted", "lost", "moved_on"]
TaskStatus = Literal["open", "done", "cancelled"]


async def get_clock(request: Request) -> Clock:
    return request.app.state.clock


async def get_policy(request: Request) -> Policy:
    return request.app.state.policy


ClockDep = Annotated[Clock, Depends(get_clock)]
PolicyDep = Annotated[Policy, Depends(get_policy)]


@router.get("/cases", response_model=CaseList, responses=UNAUTHORIZED, summary="Cases, newest first")
async def list_cases(
    session: SessionDep,
    status: CaseStatus | None = None,
    owner: str | None = None,
    account_id: str | None = None,
    tied: bool | None = Query(
        None,
        description="true: only open cases whose newest cancellation ties with a withdrawal on billing version "
        "(left for a person to decide); false: every other case",
    ),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> CaseList:
    cases = await service.list_cases(
        session, status=status, owner=owner, account_id=account_id, limit=limit, offset=offset, tied=tied
    )
    return CaseList(items=[CaseView.model_validate(case) for case in cases], limit=limit, offset=offset)


@router.get(
    "/cases/{case_id}",
    response_model=CaseDetail,
    responses={**UNAUTHORIZED, 404: {"description": "No such case"}},
    summary="One case with its diagnosis, tasks and history",
)
async def get_case(case_id: str, session: SessionDep) -> CaseDetail:
    case = await service.get_case(session, case_id)
    if case is None:
        raise HTTPException(404, f"no case {case_id!r}")
    return CaseDetail.model_validate(case)


@router.post(
    "/cases/{case_id}/outcome",
    response_model=CaseDetail,
    responses={
        **UNAUTHORIZED,
        404: {"description": "No such case"},
        409: {"description": "The case is closed already"},
        422: {"description": "An unknown outcome or root cause, or an outcome the case's record contradicts"},
    },
    summary="Close a case by hand: the outcome, why, and the root cause confirmed with the customer",
)
async def record_outcome(
    case_id: str, body: RecordOutcome, session: SessionDep, clock: ClockDep, policy: PolicyDep
) -> CaseDetail:
    case = await service.get_case(session, case_id, lock=True)
    if case is None:
        raise HTTPException(404, f"no case {case_id!r}")
    try:
        await close_by_hand(
            session,
            case,
            outcome=body.outcome,
            reason=body.reason or "recorded by hand",
            confirmed_root_cause=body.confirmed_root_cause,
            clock=clock,
            policy=policy,
            actor=body.recorded_by,
        )
    except CaseAlreadyClosed as error:
        raise HTTPException(409, str(error)) from None
    except OutcomeContradicted as error:
        raise HTTPException(422, f"{error.field}: {error}") from None
    return CaseDetail.model_validate(await service.get_case(session, case_id))


@router.get("/tasks", response_model=TaskList, responses=UNAUTHORIZED, summary="Tasks by due time, filtered")
async def get_tasks(
    session: SessionDep,
    clock: ClockDep,
    owner: str | None = None,
    status: TaskStatus | None = None,
    due_before: Timestamp | None = None,
    due_after: Timestamp | None = None,
    overdue: bool = False,
    case_id: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> TaskList:
    tasks = await list_tasks(
        session,
        now=clock.now(),
        owner=owner,
        status=status,
        due_before=due_before,
        due_after=due_after,
        overdue=overdue,
        case_id=case_id,
        limit=limit,
        offset=offset,
    )
    return TaskList(items=[TaskView.model_validate(task) for task in tasks], limit=limit, offset=offset)


@router.post(
    "/tasks/{task_id}/complete",
    response_model=TaskView,
    responses={
        **UNAUTHORIZED,
        404: {"description": "No such task"},
        409: {"description": "The task was completed or cancelled already"},
    },
    summary="Record what happened; publishes intervention.logged",
)
async def complete(
    task_id: str, body: CompleteTask, session: SessionDep, clock: ClockDep, policy: PolicyDep
) -> TaskView:
    try:
        task = await complete_task(
            session,
            task_id,
            result=body.result,
            note=body.note,
            performed_by=body.performed_by,
            clock=clock,
            policy=policy,
        )
    except TaskNotFound:
        raise HTTPException(404, f"no task {task_id!r}") from None
    except TaskNotOpen as error:
        raise HTTPException(409, str(error)) from None
    return TaskView.model_validate(task)


@router.get(
    "/reports/summary",
    response_model=ReportSummary,
    responses={
        **UNAUTHORIZED,
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv (a row per group)"},
    },
    summary="Outcomes, save rate, revenue saved (verified, pending) and lost, time to first touch, diagnosis "
    "accuracy: overall and by symptom, root cause, confirmed root cause, playbook, owner, initiator and week",
)
async def report_summary(
    session: SessionDep,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    format: Literal["json", "csv"] = "json",
) -> ReportSummary | Response:
    report = await reports.summary(session, since=since, until=until)
    if format == "csv":
        return Response(
            reports.as_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="brink-summary.csv"'},
        )
    return report


@router.put(
    "/people/{email}/notifications",
    response_model=NotificationChoice,
    responses={**UNAUTHORIZED, 404: {"description": "nobody has that email"}},
    summary="Choose a person's notification channels and daily digest",
)
async def choose_notifications(
    body: NotificationChoice, session: SessionDep, email: str = Path(max_length=320)
) -> NotificationChoice:
    channels = list(dict.fromkeys(body.channels))
    if not await recipients.choose_notifications(session, email, channels=channels, daily_digest=body.daily_digest):
        raise HTTPException(status_code=404, detail=f"no person has the email {email!r}")
    return NotificationChoice(channels=channels, daily_digest=body.daily_digest)


# --- Save offers -----------------------------------------------------------------------------------------------------


async def get_offer_context(request: Request) -> offers.OfferContext:
    return request.app.state.offer_context


OfferContextDep = Annotated[offers.OfferContext, Depends(get_offer_context)]
OFFER_REFUSALS: dict[int | str, dict[str, Any]] = {
    **UNAUTHORIZED,
    403: {"description": "The person's role may not approve or reject this offer"},
    404: {"description": "No such case or offer"},
    409: {"description": "Closed case, ended subscription, nothing to undo, not eligible, budget exhausted, decided"},
    422: {"description": "An unknown offer or person, or a currency the budget is not kept in"},
    502: {"description": "The billing system refused or failed the read the preview needs"},
}


OFFER_STATUS: dict[type[Exception], int] = {
    offers.OfferNotFound: 404,
    offers.OfferConflict: 409,
    offers.NotAllowed: 403,
}


async def offer_refused(_request: Request, error: Exception) -> JSONResponse:
    """The one place offer refusals become HTTP answers (registered on the app for ``offers.OfferError``)."""
    if isinstance(error, offers.OfferInvalid):
        return JSONResponse({"detail": f"{error.field}: {error}"}, status_code=422)
    return JSONResponse({"detail": str(error)}, status_code=OFFER_STATUS.get(type(error), 502))


@router.post(
    "/cases/{case_id}/offers",
    response_model=OfferView,
    status_code=201,
    responses=OFFER_REFUSALS,
    summary="Propose an offer on a case: its preview on the billing system and its cost; nothing is changed yet",
)
async def propose_offer(
    case_id: Annotated[str, Path(max_length=36)], body: ProposeOffer, session: SessionDep, context: OfferContextDep
) -> OfferView:
    return OfferView.model_validate(
        await offers.propose(session, case_id, offer=body.offer, by=body.by, context=context)
    )


@router.get(
    "/cases/{case_id}/offers",
    response_model=OfferList,
    responses=UNAUTHORIZED,
    summary="A case's offers, oldest first",
)
async def list_offers(case_id: Annotated[str, Path(max_length=36)], session: SessionDep) -> OfferList:
    return OfferList(items=[OfferView.model_validate(o) for o in await offers.offers_of_case(session, case_id)])


@router.get(
    "/offers/budget",
    response_model=OfferBudget,
    responses=UNAUTHORIZED,
    summary="The current period's offer budget of each team: total, spent by applied offers, committed by waiting ones, "
    "remaining",
)
async def offer_budget(session: SessionDep, context: OfferContextDep) -> OfferBudget:
    return OfferBudget.model_validate(await offers.current_budget(session, context=context))


OfferStatus = Literal["proposed", "awaiting_approval", "applied", "failed", "rejected", "undone"]


@router.get(
    "/offers",
    response_model=OfferList,
    responses=UNAUTHORIZED,
    summary="Offers in one status, oldest first (awaiting_approval: what waits for an approver)",
)
async def offers_by_status(
    session: SessionDep,
    status: OfferStatus = "awaiting_approval",
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> OfferList:
    found = await offers.offers_with_status(session, status, limit=limit, offset=offset)
    return OfferList(items=[OfferView.model_validate(offer) for offer in found])


@router.post(
    "/offers/{offer_id}/apply",
    response_model=OfferView,
    responses=OFFER_REFUSALS,
    summary="Apply an offer within the person's limit and the budget, else it waits for approval with the reason; "
    "applying twice applies once; a billing refusal leaves it failed with the vendor's message",
)
async def apply_offer(
    offer_id: Annotated[str, Path(max_length=36)], body: ApplyOffer, session: SessionDep, context: OfferContextDep
) -> OfferView:
    return OfferView.model_validate(await offers.apply(session, offer_id, by=body.by, context=context))


@router.post(
    "/offers/{offer_id}/approve",
    response_model=OfferView,
    responses=OFFER_REFUSALS,
    summary="Approve an offer waiting for approval, and apply it; of two approvals at once one wins",
)
async def approve_offer(
    offer_id: Annotated[str, Path(max_length=36)], body: ApproveOffer, session: SessionDep, context: OfferContextDep
) -> OfferView:
    return OfferView.model_validate(
        await offers.approve(session, offer_id, by=body.by, reason=body.reason, context=context)
    )


@router.post(
    "/offers/{offer_id}/reject",
    response_model=OfferView,
    responses=OFFER_REFUSALS,
    summary="Reject an offer waiting for approval, with the reason",
)
async def reject_offer(
    offer_id: Annotated[str, Path(max_length=36)], body: RejectOffer, session: SessionDep, context: OfferContextDep
) -> OfferView:
    return OfferView.model_validate(
        await offers.reject(session, offer_id, by=body.by, reason=body.reason, context=context)
    )


@router.post(
    "/offers/{offer_id}/undo",
    response_model=OfferView,
    responses=OFFER_REFUSALS,
    summary="Take an applied offer back where its billing system allows, read back; 409 with the reason where not",
)
async def undo_offer(
    offer_id: Annotated[str, Path(max_length=36)], body: UndoOffer, session: SessionDep, context: OfferContextDep
) -> OfferView:
    return OfferView.model_validate(
        await offers.undo(session, offer_id, by=body.by, reason=body.reason, context=context)
    )
