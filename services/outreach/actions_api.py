"""/v1/ routes for what people do on the desk, so a CRM or a script can do the same: reassign a task or a case,
snooze a task, add a note, switch the playbook (closing is ``POST /v1/cases/{id}/outcome``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from services.outreach import actions, service
from services.outreach.api import ClockDep, PolicyDep
from services.outreach.schemas import AddNote, CaseDetail, Reassign, Snooze, SwitchPlaybook, TaskView
from services.outreach.tasks import TaskNotFound, TaskNotOpen
from shared.auth import UNAUTHORIZED
from shared.deps import SessionDep

router = APIRouter(prefix="/v1", tags=["outreach"])
RESPONSES = {
    **UNAUTHORIZED,
    404: {"description": "No such case or task"},
    409: {"description": "The task was completed or cancelled, or the case closed, meanwhile"},
    422: {"description": "Not possible as asked (an unknown person or playbook, a snooze into the past)"},
}


def refused(error: Exception) -> HTTPException:
    """The one place an action's domain error becomes an HTTP answer."""
    if isinstance(error, TaskNotFound | actions.CaseNotFound):
        return HTTPException(404, f"no {'task' if isinstance(error, TaskNotFound) else 'case'} {error}")
    if isinstance(error, TaskNotOpen | actions.CaseNotOpen):
        return HTTPException(409, str(error))
    return HTTPException(422, str(error))


ACTION_ERRORS = (TaskNotFound, TaskNotOpen, actions.CaseNotFound, actions.CaseNotOpen, actions.ActionRefused)


async def _detail(session, case_id: str) -> CaseDetail:
    return CaseDetail.model_validate(await service.get_case(session, case_id))


@router.post(
    "/tasks/{task_id}/reassign", response_model=TaskView, responses=RESPONSES, summary="Give a task to a person"
)
async def reassign_task(
    task_id: str, body: Reassign, session: SessionDep, clock: ClockDep, policy: PolicyDep
) -> TaskView:
    try:
        task = await actions.reassign_task(session, task_id, to=body.to, actor=body.by, clock=clock, policy=policy)
    except ACTION_ERRORS as error:
        raise refused(error) from None
    return TaskView.model_validate(task)


@router.post(
    "/tasks/{task_id}/snooze",
    response_model=TaskView,
    responses=RESPONSES,
    summary="Put a task off until a moment, with a reason; its escalation waits as long",
)
async def snooze_task(task_id: str, body: Snooze, session: SessionDep, clock: ClockDep) -> TaskView:
    try:
        task = await actions.snooze_task(
            session, task_id, until=body.until, reason=body.reason, actor=body.by, clock=clock
        )
    except ACTION_ERRORS as error:
        raise refused(error) from None
    return TaskView.model_validate(task)


@router.post(
    "/cases/{case_id}/reassign",
    response_model=CaseDetail,
    responses=RESPONSES,
    summary="Give a case to a person; the old owner's open tasks go with it",
)
async def reassign_case(
    case_id: str, body: Reassign, session: SessionDep, clock: ClockDep, policy: PolicyDep
) -> CaseDetail:
    try:
        await actions.reassign_case(session, case_id, to=body.to, actor=body.by, clock=clock, policy=policy)
    except ACTION_ERRORS as error:
        raise refused(error) from None
    return await _detail(session, case_id)


@router.post("/cases/{case_id}/notes", response_model=CaseDetail, responses=RESPONSES, summary="Add a note")
async def add_note(case_id: str, body: AddNote, session: SessionDep, clock: ClockDep) -> CaseDetail:
    try:
        await actions.add_note(session, case_id, text=body.text, actor=body.by, clock=clock)
    except ACTION_ERRORS as error:
        raise refused(error) from None
    return await _detail(session, case_id)


@router.post(
    "/cases/{case_id}/playbook",
    response_model=CaseDetail,
    responses=RESPONSES,
    summary="Switch the playbook: open steps of the old one are cancelled, completed work stays",
)
async def switch_playbook(
    case_id: str, body: SwitchPlaybook, session: SessionDep, clock: ClockDep, policy: PolicyDep
) -> CaseDetail:
    try:
        await actions.change_playbook(
            session, case_id, playbook=body.playbook, reason=body.reason, actor=body.by, clock=clock, policy=policy
        )
    except ACTION_ERRORS as error:
        raise refused(error) from None
    return await _detail(session, case_id)
