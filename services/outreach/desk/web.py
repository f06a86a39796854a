"""The desk's web plumbing: templates, the signed-in dependency, page responses with safe headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.outreach.desk.session import COOKIE, Sessions, SignedInPerson
from services.outreach.desk.settings import DeskSettings
from services.outreach.desk.signin import Limits
from shared.deps import SessionDep
from shared.logs import get_logger

log = get_logger("outreach.desk")
HERE = Path(__file__).parent
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@dataclass
class DeskState:
    """What the desk's routes share, kept on ``app.state.desk``."""

    settings: DeskSettings
    sessions: Sessions
    limits: Limits
    # Diagnosis's /v1/ (the discovery answers go there), with a bearer token of this deployment.
    diagnosis: httpx.AsyncClient


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, fragments answer 401."""


class NotAllowed(Exception):
    """The signed-in person may not do this: a 403 page saying what, in the desk's layout, with a way back."""

    def __init__(self, reason: str, *, session: SignedInPerson, back: tuple[str, str] = ("/desk", "my work")) -> None:
        super().__init__(reason)
        self.session = session
        self.back = back  # (where, what): the page the person came from or can carry on from


def form_text(form: Any, name: str, limit: int = 320) -> str:
    """A form field as text a table can hold: trimmed, cut to ``limit``, without NUL characters (PostgreSQL
    refuses them, which made a sign-in with one a 500) or lone surrogates."""
    text = str(form.get(name) or "").replace("\x00", "").strip()[:limit]
    return text.encode("utf-8", "replace").decode("utf-8")


def when(moment: datetime | None) -> str:
    """A moment in UTC, the way people read it."""
    return moment.astimezone(UTC).strftime("%a %d %b %Y, %H:%M UTC") if moment else "—"


def relative(moment: datetime | None, now: datetime) -> str:
    """'in 3 days', '5 hours ago'."""
    if moment is None:
        return ""
    seconds = (moment - now).total_seconds()
    amount = abs(seconds)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if amount >= size:
            count = int(amount // size)
            text = f"{count} {unit}{'s' if count != 1 else ''}"
            break
    else:
        text = "less than a minute"
    return f"in {text}" if seconds >= 0 else f"{text} ago"


def money(minor: int | None, currency: str | None) -> str:
    if minor is None:
        return "unknown"
    return f"{minor / 100:,.2f} {(currency or '').upper()}".strip()


def humanize(name: str | None) -> str:
    return (name or "").replace("_", " ")


templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(when=when, relative=relative, money=money, humanize=humanize)


def desk_state(request: Request) -> DeskState:
    return request.app.state.desk


# The shared session commits before the response leaves, so the page a form redirects to shows the change.
DbSession = SessionDep


async def current_session(request: Request) -> SignedInPerson:
    """The signed-in person, or SignInRequired (no cookie, or a session that ended, expired or was forged).

    Read in a short transaction of its own: pages that only read the broker (the flow) then hold no database
    transaction, which on SQLite would be the one writer's lock.
    """
    async with request.app.state.runtime.sessions() as db:
        signed_in = await desk_state(request).sessions.read(
            db, request.cookies.get(COOKIE), now=request.app.state.clock.now()
        )
    if signed_in is None:
        raise SignInRequired
    return signed_in


async def admin_only(session: Annotated[SignedInPerson, Depends(current_session)]) -> SignedInPerson:
    """Roles are checked here, once: only admins manage people."""
    if session.role != "admin":
        raise NotAllowed("Only an admin manages people.", session=session)
    return session


SignedIn = Annotated[SignedInPerson, Depends(current_session)]
Admin = Annotated[SignedInPerson, Depends(admin_only)]


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    session: SignedInPerson | None = None,
) -> HTMLResponse:
    """A rendered page with the signed-in person, their CSRF token and the desk's security headers."""
    sso = getattr(request.app.state, "sso", None)
    context = {
        "session": session,
        "refresh_seconds": desk_state(request).settings.refresh_seconds,
        "sso": sso.name if sso is not None else None,
        "approves_offers": session is not None and request.app.state.offer_context.rules.approves(session.role),
        **context,
    }
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


def set_session_cookie(response: Response, request: Request, value: str) -> None:
    """The session cookie: only the signed opaque id, never readable by scripts, sent to /desk only."""
    state = desk_state(request)
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(state.sessions.lifetime.total_seconds()),
        path="/desk",
        httponly=True,
        secure=state.settings.cookie_secure,
        samesite="lax",
    )


def csrf_refused(request: Request, session: SignedInPerson | None) -> HTMLResponse:
    """The answer to a form without this session's CSRF token: nothing changed."""
    log.warning("outreach.desk.csrf_refused", path=request.url.path)
    return page(request, "missing.html", {"what": None, "csrf": True}, status_code=403, session=session)


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/desk/signin?next={quote(target, safe='')}", status_code=303)


def safe_next(target: str | None) -> str:
    """Only desk pages on this site are followed after sign-in."""
    if (
        target
        and (target == "/desk" or target.startswith(("/desk/", "/desk?")))
        and ".." not in target
        and "\\" not in target
    ):
        return target
    return "/desk"
