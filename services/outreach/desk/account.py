"""Signing in and out of the desk."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.outreach.desk.session import COOKIE, csrf_matches
from services.outreach.desk.signin import TooManyAttempts, authenticate
from services.outreach.desk.web import (
    DbSession,
    SignedIn,
    csrf_refused,
    desk_state,
    form_text,
    page,
    safe_next,
    set_session_cookie,
)
from shared.logs import get_logger

log = get_logger("outreach.desk.account")
router = APIRouter(prefix="/desk", include_in_schema=False)
WRONG = "That email and password do not match an active person on this desk."


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/signin", response_class=HTMLResponse)
async def sign_in_form(request: Request, next: str | None = None) -> HTMLResponse:
    return page(request, "signin.html", {"next": safe_next(next), "error": None, "email": ""})


@router.post("/signin", response_class=HTMLResponse)
async def sign_in(request: Request, db: DbSession) -> Response:
    form = await request.form()
    email, password = form_text(form, "email"), str(form.get("password") or "")
    target = safe_next(form_text(form, "next", 2000))
    state = desk_state(request)
    now = request.app.state.clock.now()

    def refused(error: str, status_code: int, headers: dict[str, str] | None = None) -> HTMLResponse:
        response = page(
            request, "signin.html", {"next": target, "error": error, "email": email}, status_code=status_code
        )
        response.headers.update(headers or {})
        return response

    if not email or not password:
        return refused("Enter your email and your password.", 422)
    try:
        person = await authenticate(
            db, email=email, password=password, address=_address(request), limits=state.limits, now=now
        )
    except TooManyAttempts as error:
        log.warning("outreach.desk.sign_in_throttled", address=_address(request))
        return refused(
            f"Too many failed sign-ins. Try again in {error.retry_after} seconds.",
            429,
            {"Retry-After": str(error.retry_after)},
        )
    if person is None:
        log.info("outreach.desk.sign_in_refused", address=_address(request))
        return refused(WRONG, 401)
    _, value = await state.sessions.start(
        db, person, now=now, address=_address(request), replacing=request.cookies.get(COOKIE)
    )
    response = RedirectResponse(target, status_code=303)
    set_session_cookie(response, request, value)
    log.info("outreach.desk.signed_in", person_id=person.id)
    return response


@router.post("/signout")
async def sign_out(request: Request, session: SignedIn, db: DbSession) -> Response:
    form = await request.form()
    if not csrf_matches(session, str(form.get("csrf") or "")):
        return csrf_refused(request, session)
    await desk_state(request).sessions.end(db, request.cookies.get(COOKIE))
    response = RedirectResponse("/desk/signin", status_code=303)
    response.delete_cookie(
        COOKIE, path="/desk", httponly=True, secure=desk_state(request).settings.cookie_secure, samesite="lax"
    )
    return response
