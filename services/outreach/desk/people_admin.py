"""The admin's People page: add people, change their role, manager and contacts, reset passwords, deactivate."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.outreach import people
from services.outreach.desk.session import csrf_matches
from services.outreach.desk.web import Admin, DbSession, csrf_refused, form_text, page
from services.outreach.models import PERSON_ROLES
from shared.logs import get_logger

log = get_logger("outreach.desk.people")
router = APIRouter(prefix="/desk/people", include_in_schema=False)


async def _people_page(
    request: Request,
    session,
    db,
    *,
    error: str | None = None,
    done: str | None = None,
    status_code: int = 200,
    form: dict | None = None,
) -> HTMLResponse:
    everyone = await people.list_people(db)
    by_id = {person.id: person for person in everyone}
    return page(
        request,
        "people.html",
        {
            "people": everyone,
            "managers": {person.id: by_id.get(person.manager_id or "") for person in everyone},
            "roles": PERSON_ROLES,
            "error": error,
            "done": done,
            "form": form or {},
        },
        status_code=status_code,
        session=session,
    )


@router.get("", response_class=HTMLResponse)
async def people_page(request: Request, session: Admin, db: DbSession, done: str | None = None) -> HTMLResponse:
    return await _people_page(request, session, db, done=done)


@router.post("")
async def add(request: Request, session: Admin, db: DbSession) -> Response:
    form = await request.form()
    if not csrf_matches(session, str(form.get("csrf") or "")):
        return csrf_refused(request, session)
    fields = {
        name: form_text(form, name) for name in ("email", "name", "role", "manager", "slack_user_id", "time_zone")
    }
    try:
        person = await people.add_person(
            db,
            email=fields["email"],
            name=fields["name"],
            role=fields["role"],
            manager_email=fields["manager"] or None,
            slack_user_id=fields["slack_user_id"] or None,
            time_zone=fields["time_zone"] or "UTC",
            password=str(form.get("password") or "") or None,
            now=request.app.state.clock.now(),
        )
    except people.PeopleError as error:
        return await _people_page(request, session, db, error=str(error), status_code=422, form=fields)
    log.info("outreach.desk.person_added", person_id=person.id, by=session.person.id)
    return RedirectResponse(f"/desk/people?done=added#person-{person.id}", status_code=303)


async def _target(db, person_id: str):
    person = await people.get_person(db, person_id)
    if person is None:
        raise people.PersonNotFound(f"there is no person {person_id}")
    return person


@router.post("/{person_id}")
async def change(request: Request, person_id: str, session: Admin, db: DbSession) -> Response:
    """One form per person row: what to change is named by the button pressed (``do``)."""
    form = await request.form()
    if not csrf_matches(session, str(form.get("csrf") or "")):
        return csrf_refused(request, session)
    now = request.app.state.clock.now()
    action = str(form.get("do") or "")
    try:
        person = await _target(db, person_id)
        if action == "update":
            await people.update_person(
                db,
                person,
                now=now,
                name=form_text(form, "name", 255),
                role=form_text(form, "role"),
                manager_email=form_text(form, "manager"),
                slack_user_id=form_text(form, "slack_user_id"),
                time_zone=form_text(form, "time_zone") or "UTC",
            )
        elif action == "deactivate":
            if person.id == session.person.id:
                raise people.InvalidPerson("you cannot deactivate yourself; ask another admin")
            await people.deactivate(db, person, now=now)
        elif action == "reactivate":
            await people.reactivate(db, person, now=now)
        elif action == "password":
            await people.set_password(db, person, str(form.get("password") or ""), now=now)
        else:
            raise people.InvalidPerson(f"unknown change {action!r}")
    except people.PeopleError as error:
        return await _people_page(request, session, db, error=str(error), status_code=422)
    log.info("outreach.desk.person_changed", person_id=person_id, change=action, by=session.person.id)
    return RedirectResponse(f"/desk/people?done={action}#person-{person_id}", status_code=303)
