"""The desk's pages: queue, case (with task completion), results and flow; mounting the whole desk."""

from __future__ import annotations

from datetime import timedelta

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr, ValidationError

from services.outreach import people, reports, service
from services.outreach.desk import account, people_admin
from services.outreach.desk import queue as desk_queue
from services.outreach.desk.flow import read_flow
from services.outreach.desk.results import result_charts
from services.outreach.desk.session import Sessions, csrf_matches, signing_key
from services.outreach.desk.settings import DeskSettings
from services.outreach.desk.signin import Limits
from services.outreach.desk.timeline import timeline
from services.outreach.desk.web import (
    HERE,
    DbSession,
    DeskState,
    NotAllowed,
    SignedIn,
    SignInRequired,
    csrf_refused,
    desk_state,
    page,
    sign_in_redirect,
)
from services.outreach.models import TASK_RESULTS, Task
from services.outreach.schemas import CompleteTask
from services.outreach.tasks import TaskNotFound, TaskNotOpen, complete_task
from shared.logs import get_logger

log = get_logger("outreach.desk")
router = APIRouter(prefix="/desk", include_in_schema=False)
MAX_FORM_FIELD = 5000


@router.get("", response_class=HTMLResponse)
async def queue_page(
    request: Request,
    session: SignedIn,
    db: DbSession,
    status: str | None = None,
    owner: str | None = None,
    root_cause: str | None = None,
) -> HTMLResponse:
    filters = desk_queue.QueueFilters.parse(status=status, owner=owner, root_cause=root_cause)
    now = request.app.state.clock.now()
    rows = await desk_queue.queue(db, filters=filters, now=now)
    owners, causes = await desk_queue.filter_choices(db)
    return page(
        request,
        "queue.html",
        {
            "rows": rows,
            "filters": filters,
            "owners": owners,
            "causes": causes,
            "now": now,
            "limit": desk_queue.QUEUE_LIMIT,
        },
        session=session,
    )


async def _case_page(
    request: Request,
    session,
    db,
    case_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    done: str | None = None,
) -> HTMLResponse:
    case = await service.get_case(db, case_id)
    if case is None:
        return page(request, "missing.html", {"what": f"case {case_id}"}, status_code=404, session=session)
    now = request.app.state.clock.now()
    mentioned = {case.owner, *(t.owner for t in case.tasks), *(t.completed_by for t in case.tasks)}
    mentioned |= {event.actor for event in case.events}
    return page(
        request,
        "case.html",
        {
            "names": await people.names_by_email(db, {email for email in mentioned if email}),
            "case": case,
            "d": case.diagnosis or {},
            "steps": timeline(case, now=now),
            "now": now,
            "results": TASK_RESULTS,
            "error": error,
            "done": done,
        },
        status_code=status_code,
        session=session,
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_page(
    request: Request, case_id: str, session: SignedIn, db: DbSession, done: str | None = None
) -> HTMLResponse:
    return await _case_page(request, session, db, case_id, done=done)


@router.post("/cases/{case_id}/tasks/{task_id}/complete")
async def complete(request: Request, case_id: str, task_id: str, session: SignedIn, db: DbSession) -> Response:
    form = await request.form()
    if not csrf_matches(session, str(form.get("csrf") or "")):
        return csrf_refused(request, session)
    task = await db.get(Task, task_id)
    if task is None or task.case_id != case_id:
        return page(request, "missing.html", {"what": f"task {task_id}"}, status_code=404, session=session)
    try:
        body = CompleteTask(
            result=str(form.get("result") or ""),
            note=str(form.get("note") or "").strip() or None,
            performed_by=session.email,
        )
    except ValidationError:
        return await _case_page(
            request,
            session,
            db,
            case_id,
            status_code=422,
            error=f"Choose a result ({', '.join(TASK_RESULTS)}); notes are at most 5000 characters.",
        )
    try:
        # The same use case as POST /v1/tasks/{id}/complete: history, timers and intervention.logged alike.
        await complete_task(
            db,
            task_id,
            result=body.result,
            note=body.note,
            performed_by=body.performed_by,
            clock=request.app.state.clock,
            policy=request.app.state.policy,
        )
    except TaskNotFound:
        return page(request, "missing.html", {"what": f"task {task_id}"}, status_code=404, session=session)
    except TaskNotOpen as error:
        return await _case_page(request, session, db, case_id, status_code=409, error=str(error))
    return RedirectResponse(f"/desk/cases/{case_id}?done={task_id}#timeline", status_code=303)


@router.get("/results", response_class=HTMLResponse)
async def results_page(request: Request, session: SignedIn, db: DbSession) -> HTMLResponse:
    report = await reports.summary(db)
    currency, charts = result_charts(report)
    return page(request, "results.html", {"report": report, "currency": currency, "charts": charts}, session=session)


async def _flow(request: Request):
    state = desk_state(request)
    runtime = request.app.state.runtime
    # The other services' /metrics answer an operations token (or, with none configured, this machine).
    ops_tokens = runtime.settings.ops_tokens
    headers = {"Authorization": f"Bearer {ops_tokens[0].get_secret_value()}"} if ops_tokens else {}
    async with httpx.AsyncClient(timeout=2.0, headers=headers) as client:
        return await read_flow(
            request.app.state.runtime, queues=state.settings.queues, services=state.settings.services(), client=client
        )


@router.get("/flow", response_class=HTMLResponse)
async def flow_page(request: Request, session: SignedIn) -> HTMLResponse:
    return page(request, "flow.html", {"flow": await _flow(request)}, session=session)


@router.get("/flow/panel", response_class=HTMLResponse)
async def flow_panel(request: Request, session: SignedIn) -> HTMLResponse:
    """The live part of the flow page, fetched again every few seconds."""
    return page(request, "_flow_panel.html", {"flow": await _flow(request)}, session=session)


def mount_desk(app: FastAPI, *, api_tokens: list[SecretStr], settings: DeskSettings) -> None:
    """Serve the desk under /desk on outreach's app."""
    sessions = Sessions(
        key=signing_key(secret_key=settings.secret_key, api_tokens=api_tokens),
        lifetime=timedelta(hours=settings.session_hours),
    )
    limits = Limits(
        per_account=settings.signin_attempts_per_account,
        per_address=settings.signin_attempts_per_address,
        window=timedelta(seconds=settings.signin_window_seconds),
    )
    app.state.desk = DeskState(settings=settings, sessions=sessions, limits=limits)
    for desk_router in (account.router, router, people_admin.router):
        app.include_router(desk_router)
    app.mount("/desk/static", StaticFiles(directory=HERE / "static"), name="desk-static")

    @app.exception_handler(SignInRequired)
    async def needs_sign_in(request: Request, _error: SignInRequired) -> Response:
        if request.url.path.startswith("/desk/flow/panel"):
            return Response("sign in again", status_code=401, media_type="text/plain")
        if request.method != "GET":
            return RedirectResponse("/desk/signin", status_code=303)
        return sign_in_redirect(request)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, error: NotAllowed) -> Response:
        return page(request, "missing.html", {"what": None, "refused": str(error)}, status_code=403)
