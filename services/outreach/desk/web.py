"""The desk's web plumbing: templates, the signed-in dependency, page responses with safe headers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.outreach.desk.session import COOKIE, DeskSession, SessionCodec
from services.outreach.desk.settings import DeskSettings
from shared.deps import SessionDep

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
    codec: SessionCodec


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, fragments answer 401."""


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


def current_session(request: Request) -> DeskSession:
    """The signed-in session, or SignInRequired."""
    session = desk_state(request).codec.read(request.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired
    return session


SignedIn = Annotated[DeskSession, Depends(current_session)]
# The shared session commits before the response leaves, so the page a form redirects to shows the change.
DbSession = SessionDep


def page(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    session: DeskSession | None = None,
) -> HTMLResponse:
    """A rendered page with the signed-in person, their CSRF token and the desk's security headers."""
    context = {"session": session, "refresh_seconds": desk_state(request).settings.refresh_seconds, **context}
    response = templates.TemplateResponse(request, template, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response


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
