"""The desk's pages: queue, case (with task completion), results and flow; mounting the whole desk."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import SecretStr

from services.outreach import people, reports
from services.outreach.desk import account, case_actions, notification_settings, offer_pages, people_admin, sso, work
from services.outreach.desk import queue as desk_queue
from services.outreach.desk.case_view import render_case
from services.outreach.desk.flow import read_flow
from services.outreach.desk.results import result_charts
from services.outreach.desk.session import Sessions, signing_key
from services.outreach.desk.settings import DeskSettings
from services.outreach.desk.signin import Limits
from services.outreach.desk.sso import SingleSignOn
from services.outreach.desk.web import (
    HERE,
    DbSession,
    DeskState,
    NotAllowed,
    SignedIn,
    SignInRequired,
    desk_state,
    page,
    sign_in_redirect,
)
from shared.logs import get_logger

log = get_logger("outreach.desk")
router = APIRouter(prefix="/desk", include_in_schema=False)
DIAGNOSIS_URL = "http://127.0.0.1:8001"
MAX_FORM_FIELD = 5000


@router.get("", response_class=HTMLResponse)
async def my_work_page(
    request: Request,
    session: SignedIn,
    db: DbSession,
    scope: str | None = None,
    show: str | None = None,
    kind: str | None = None,
    q: str | None = None,
    page_number: str | None = Query(None, alias="page"),
) -> HTMLResponse:
    """The landing page: the signed-in person's tasks, overdue first; a manager's team's too."""
    has_team = bool(await people.team_of(db, session.person))
    filters = work.WorkFilters.parse(scope=scope, show=show, kind=kind, q=q, has_team=has_team)
    now = request.app.state.clock.now()
    rows, paging, team = await work.my_work(
        db, person=session.person, filters=filters, now=now, page=desk_queue.page_number(page_number)
    )
    names = await people.names_by_email(db, {row.case.owner for row in rows if row.case.owner})
    return page(
        request,
        "work.html",
        {
            "rows": rows,
            "paging": paging,
            "filters": filters,
            "has_team": has_team,
            "names": {**names, **team, session.email: session.name},
            "now": now,
        },
        session=session,
    )


@router.get("/cases", response_class=HTMLResponse)
async def queue_page(
    request: Request,
    session: SignedIn,
    db: DbSession,
    status: str | None = None,
    owner: str | None = None,
    root_cause: str | None = None,
    q: str | None = None,
    tied: str | None = None,
    page_number: str | None = Query(None, alias="page"),
) -> HTMLResponse:
    """Every case, highest priority first, a page at a time."""
    filters = desk_queue.QueueFilters.parse(status=status, owner=owner, root_cause=root_cause, q=q, tied=tied)
    now = request.app.state.clock.now()
    rows, paging = await desk_queue.queue(db, filters=filters, now=now, page=desk_queue.page_number(page_number))
    owners, causes = await desk_queue.filter_choices(db)
    return page(
        request,
        "queue.html",
        {
            "rows": rows,
            "paging": paging,
            "filters": filters,
            "owners": owners,
            "names": await people.names_by_email(db, set(owners)),
            "causes": causes,
            "now": now,
        },
        session=session,
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
async def case_page(
    request: Request, case_id: str, session: SignedIn, db: DbSession, done: str | None = None
) -> HTMLResponse:
    return await render_case(request, session, db, case_id, done=done)


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
    diagnosis = httpx.AsyncClient(
        base_url=settings.services().get("diagnosis", DIAGNOSIS_URL),
        headers={"Authorization": f"Bearer {api_tokens[0].get_secret_value()}"},
        timeout=5.0,
    )
    app.state.desk = DeskState(settings=settings, sessions=sessions, limits=limits, diagnosis=diagnosis)
    if settings.oidc_issuer and settings.oidc_client_id and settings.oidc_client_secret:
        app.state.sso = SingleSignOn(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            name=settings.oidc_name,
            signing_key=signing_key(secret_key=settings.secret_key, api_tokens=api_tokens),
        )
    for desk_router in (
        account.router,
        router,
        case_actions.router,
        offer_pages.router,
        people_admin.router,
        notification_settings.router,
        sso.router,
    ):
        app.include_router(desk_router)

    async def close_client_on_exit() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await app.state.desk.diagnosis.aclose()

    app.state.runtime.run_in_background(close_client_on_exit)
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
        context = {"what": None, "refused": str(error), "back": error.back}
        return page(request, "missing.html", context, status_code=403, session=error.session)
