"""How a person is told: their personal channels and daily digest, on their own settings page (an admin's for
anyone, from the People page). The same choice as ``PUT /v1/people/{email}/notifications``, validated alike."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.outreach import people, recipients
from services.outreach.desk.session import SignedInPerson, csrf_matches
from services.outreach.desk.web import Admin, DbSession, SignedIn, csrf_refused, page
from services.outreach.models import Person
from services.outreach.notifications import PERSONAL_CHANNELS
from services.outreach.schemas import NotificationChoice
from shared.logs import get_logger

log = get_logger("outreach.desk.notifications")
router = APIRouter(prefix="/desk", include_in_schema=False)
CHANNEL_NAMES = {"email": "Email", "slack_dm": "Slack direct message"}


def _page(
    request: Request,
    session: SignedInPerson,
    person: Person,
    *,
    action: str,
    done: bool = False,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    chosen = [channel for channel in (person.notify_channels or "").split(",") if channel in PERSONAL_CHANNELS]
    context = {
        "person": person,
        "own": person.id == session.person.id,
        "action": action,
        "channels": CHANNEL_NAMES,
        "chosen": chosen,
        "done": done,
        "error": error,
    }
    return page(request, "notifications.html", context, status_code=status_code, session=session)


async def _save(request: Request, session: SignedInPerson, db: DbSession, person: Person, *, action: str) -> Response:
    """Check the form and record the choice; the page again saying why when it cannot be recorded (422)."""
    form = await request.form()
    if not csrf_matches(session, str(form.get("csrf") or "")):
        return csrf_refused(request, session)
    try:
        choice = NotificationChoice(
            channels=list(dict.fromkeys(str(value) for value in form.getlist("channels"))),
            daily_digest=form.get("daily_digest") == "yes",
        )
    except ValidationError:
        error = f"Choose among {' and '.join(CHANNEL_NAMES.values()).lower()} (or neither)."
        return _page(request, session, person, action=action, error=error, status_code=422)
    if "slack_dm" in choice.channels and not person.slack_user_id:
        error = "Slack direct messages need a Slack user id; an admin sets it on the People page."
        return _page(request, session, person, action=action, error=error, status_code=422)
    await recipients.choose_notifications(db, person.email, channels=choice.channels, daily_digest=choice.daily_digest)
    log.info("outreach.desk.notifications_chosen", person_id=person.id, by=session.person.id)
    return RedirectResponse(f"{action}?done=1", status_code=303)


async def _someone(db: DbSession, person_id: str) -> Person:
    person = await people.get_person(db, person_id)
    if person is None:
        raise people.PersonNotFound(f"there is no person {person_id}")
    return person


@router.get("/settings", response_class=HTMLResponse)
async def my_notifications(request: Request, session: SignedIn, db: DbSession, done: str | None = None) -> Response:
    person = await _someone(db, session.person.id)
    return _page(request, session, person, action="/desk/settings", done=bool(done))


@router.post("/settings")
async def choose_my_notifications(request: Request, session: SignedIn, db: DbSession) -> Response:
    return await _save(request, session, db, await _someone(db, session.person.id), action="/desk/settings")


@router.get("/people/{person_id}/notifications", response_class=HTMLResponse)
async def someones_notifications(
    request: Request, person_id: str, session: Admin, db: DbSession, done: str | None = None
) -> Response:
    try:
        person = await _someone(db, person_id)
    except people.PersonNotFound:
        return page(request, "missing.html", {"what": f"person {person_id}"}, status_code=404, session=session)
    return _page(request, session, person, action=f"/desk/people/{person.id}/notifications", done=bool(done))


@router.post("/people/{person_id}/notifications")
async def choose_someones_notifications(request: Request, person_id: str, session: Admin, db: DbSession) -> Response:
    try:
        person = await _someone(db, person_id)
    except people.PersonNotFound:
        return page(request, "missing.html", {"what": f"person {person_id}"}, status_code=404, session=session)
    return await _save(request, session, db, person, action=f"/desk/people/{person.id}/notifications")
