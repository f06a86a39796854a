"""Every action on a case from its page: complete, reassign or snooze a task; reassign the case; add a note;
switch the playbook; close with what was learnt; answer the discovery questions. Each form calls the same use
case as its /v1/ route; a refused one shows why on the case page (409 when the case or task changed meanwhile)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from services.outreach import actions, service
from services.outreach.desk.case_view import check_may_act, render_case
from services.outreach.desk.session import SignedInPerson, csrf_matches
from services.outreach.desk.web import DbSession, SignedIn, csrf_refused, desk_state, page
from services.outreach.endings import CaseAlreadyClosed, OutcomeContradicted, close_by_hand
from services.outreach.models import TASK_RESULTS, Case
from services.outreach.schemas import CompleteTask, RecordOutcome
from services.outreach.tasks import TaskNotFound, TaskNotOpen, complete_task
from shared.logs import get_logger

log = get_logger("outreach.desk.actions")
router = APIRouter(prefix="/desk/cases/{case_id}", include_in_schema=False)
TEXT_LIMIT = 5000
ACTION_ERRORS = (TaskNotFound, TaskNotOpen, actions.CaseNotFound, actions.CaseNotOpen, actions.ActionRefused)


class Refusal(Exception):
    """An action refused before it ran: the response to send instead."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _text(form: FormData, name: str, limit: int = TEXT_LIMIT) -> str:
    return str(form.get(name) or "").strip()[:limit]


async def acting_on_case(
    request: Request, session: SignedInPerson, db: Any, case_id: str, task_id: str | None = None
) -> tuple[FormData, Case]:
    """The form, once its CSRF token matches, and the case, once the person may act on it (and holds the task).

    Every form that acts on a case starts here, so none skips the CSRF check or the check of who may act.
    Raises ``Refusal`` with the page to send instead (403 for a bad token, 404 for a case or task that is not
    there), and ``NotAllowed`` (403) for a case the person may not act on."""
    form = await request.form()
    if not csrf_matches(session, str(form.get("csrf") or "")):
        raise Refusal(csrf_refused(request, session))
    case = await service.get_case(db, case_id)
    if case is None or (task_id is not None and task_id not in {task.id for task in case.tasks}):
        what = f"case {case_id}" if case is None else f"task {task_id} on this case"
        raise Refusal(page(request, "missing.html", {"what": what}, status_code=404, session=session))
    await check_may_act(db, session, case)
    return form, case


async def _refused(request: Request, session: SignedInPerson, db: Any, case_id: str, error: Exception) -> Response:
    """The case page again, saying why: 409 when it changed meanwhile, 404 when gone, else 422."""
    if isinstance(error, TaskNotOpen | actions.CaseNotOpen | CaseAlreadyClosed):
        status = 409
    elif isinstance(error, TaskNotFound | actions.CaseNotFound):
        status = 404
    else:
        status = 422
    return await render_case(request, session, db, case_id, status_code=status, error=str(error))


def done_redirect(case_id: str, what: str, anchor: str = "timeline") -> RedirectResponse:
    """Back to the case page after an action that worked (303, so a reload does not post again), saying ``what``
    was done and scrolled to ``anchor``."""
    return RedirectResponse(f"/desk/cases/{case_id}?done={what}#{anchor}", status_code=303)


@router.post("/tasks/{task_id}/complete")
async def complete(request: Request, case_id: str, task_id: str, session: SignedIn, db: DbSession) -> Response:
    try:
        form, _ = await acting_on_case(request, session, db, case_id, task_id)
    except Refusal as refusal:
        return refusal.response
    try:
        body = CompleteTask(result=_text(form, "result"), note=_text(form, "note") or None, performed_by=session.email)
    except ValidationError:
        error = f"Choose a result ({', '.join(TASK_RESULTS)}); notes are at most 5000 characters."
        return await render_case(request, session, db, case_id, status_code=422, error=error)
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
    except (TaskNotFound, TaskNotOpen) as error:
        return await _refused(request, session, db, case_id, error)
    return done_redirect(case_id, "completed")


async def _act(
    request: Request,
    session: SignedInPerson,
    db: Any,
    case_id: str,
    action: Callable[[FormData], Awaitable[object]],
    *,
    done: str,
    task_id: str | None = None,
    anchor: str = "timeline",
) -> Response:
    """Check the form and the right to act, run the action, and show the case again (or why not)."""
    try:
        form, _ = await acting_on_case(request, session, db, case_id, task_id)
        await action(form)
    except Refusal as refusal:
        return refusal.response
    except ACTION_ERRORS as error:
        return await _refused(request, session, db, case_id, error)
    return done_redirect(case_id, done, anchor)


@router.post("/tasks/{task_id}/reassign")
async def reassign_task(request: Request, case_id: str, task_id: str, session: SignedIn, db: DbSession) -> Response:
    async def reassign(form: FormData) -> object:
        return await actions.reassign_task(
            db,
            task_id,
            to=_text(form, "to", 320),
            actor=session.email,
            clock=request.app.state.clock,
            policy=request.app.state.policy,
        )

    return await _act(request, session, db, case_id, reassign, done="reassigned", task_id=task_id)


@router.post("/tasks/{task_id}/snooze")
async def snooze_task(request: Request, case_id: str, task_id: str, session: SignedIn, db: DbSession) -> Response:
    async def snooze(form: FormData) -> object:
        reason = _text(form, "reason", 1000)
        if not reason:
            raise actions.ActionRefused("say why the task is snoozed")
        until = _moment(_text(form, "until", 40), session.person.time_zone)
        return await actions.snooze_task(
            db, task_id, until=until, reason=reason, actor=session.email, clock=request.app.state.clock
        )

    return await _act(request, session, db, case_id, snooze, done="snoozed", task_id=task_id)


def _moment(value: str, time_zone: str) -> datetime:
    """A date and time from the form (the browser's local picker), in the person's time zone."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise actions.ActionRefused("choose the date and time to snooze until") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(time_zone))


@router.post("/reassign")
async def reassign_case(request: Request, case_id: str, session: SignedIn, db: DbSession) -> Response:
    async def reassign(form: FormData) -> object:
        return await actions.reassign_case(
            db,
            case_id,
            to=_text(form, "to", 320),
            actor=session.email,
            clock=request.app.state.clock,
            policy=request.app.state.policy,
        )

    return await _act(request, session, db, case_id, reassign, done="case_reassigned", anchor="top")


@router.post("/notes")
async def add_note(request: Request, case_id: str, session: SignedIn, db: DbSession) -> Response:
    async def note(form: FormData) -> object:
        return await actions.add_note(
            db, case_id, text=_text(form, "text"), actor=session.email, clock=request.app.state.clock
        )

    return await _act(request, session, db, case_id, note, done="note_added", anchor="history")


@router.post("/playbook")
async def switch_playbook(request: Request, case_id: str, session: SignedIn, db: DbSession) -> Response:
    async def switch(form: FormData) -> object:
        return await actions.change_playbook(
            db,
            case_id,
            playbook=_text(form, "playbook", 64),
            reason=_text(form, "reason", 1000) or None,
            actor=session.email,
            clock=request.app.state.clock,
            policy=request.app.state.policy,
        )

    return await _act(request, session, db, case_id, switch, done="playbook_switched")


@router.post("/close")
async def close(request: Request, case_id: str, session: SignedIn, db: DbSession) -> Response:
    try:
        form, _ = await acting_on_case(request, session, db, case_id)
    except Refusal as refusal:
        return refusal.response
    try:
        body = RecordOutcome(
            outcome=_text(form, "outcome"),
            confirmed_root_cause=_text(form, "confirmed_root_cause"),
            reason=_text(form, "reason") or None,
            recorded_by=session.email,
        )
    except ValidationError:
        error = "Choose the outcome and the root cause you confirmed with the customer (or unknown)."
        return await render_case(request, session, db, case_id, status_code=422, error=error)
    case = await service.get_case(db, case_id, lock=True)
    assert case is not None  # found above, and cases are never deleted
    try:
        await close_by_hand(
            db,
            case,
            outcome=body.outcome,
            reason=body.reason or "closed on the desk",
            confirmed_root_cause=body.confirmed_root_cause,
            clock=request.app.state.clock,
            policy=request.app.state.policy,
            actor=session.email,
        )
    except (CaseAlreadyClosed, OutcomeContradicted) as error:
        return await _refused(request, session, db, case_id, error)
    return done_redirect(case_id, "closed", "top")


@router.post("/answers")
async def answer_questions(request: Request, case_id: str, session: SignedIn) -> Response:
    """Send the answers to diagnosis (``POST /v1/accounts/{id}/answers``), which diagnoses the case again.

    No transaction is held while diagnosis answers: on SQLite that would be the one writer's lock, which
    diagnosis needs to store the answers.
    """
    sessions = request.app.state.runtime.sessions
    async with sessions() as db:
        try:
            form, case = await acting_on_case(request, session, db, case_id)
        except Refusal as refusal:
            return refusal.response
        asked = {ask["id"] for unknown in case.diagnosis.get("unknowns") or [] for ask in unknown.get("asks") or []}
        account_id = case.account_id
    answers = [
        {"question_id": question, "value": _text(form, f"answer-{question}", 2000), "answered_by": session.email}
        for question in sorted(asked)
        if _text(form, f"answer-{question}", 2000)
    ]
    error, status = await _send_answers(request, case_id, account_id, answers)
    if error is None:
        return done_redirect(case_id, "answered", "unknowns")
    async with sessions() as db:
        return await render_case(request, session, db, case_id, status_code=status, error=error)


async def _send_answers(
    request: Request, case_id: str, account_id: str, answers: list[dict[str, str]]
) -> tuple[str | None, int]:
    """None when diagnosis took the answers; else what to tell the person, and the status."""
    if not answers:
        return "Answer at least one question.", 422
    try:
        response = await desk_state(request).diagnosis.post(
            f"/v1/accounts/{account_id}/answers", json={"answers": answers}
        )
    except httpx.HTTPError as error:
        log.warning("outreach.desk.answers_unsent", case_id=case_id, error=error.__class__.__name__)
        return "Diagnosis could not be reached, so the answers were not recorded; try again in a moment.", 503
    if response.status_code == 422:
        return f"Diagnosis refused the answers: {_why(response)}", 422
    if not response.is_success:
        log.warning("outreach.desk.answers_refused", case_id=case_id, status=response.status_code)
        return f"Diagnosis answered {response.status_code}, so the answers were not recorded.", 502
    log.info("outreach.desk.answers_sent", case_id=case_id, questions=len(answers))
    return None, 303


def _why(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "no reason given"
    problems = body.get("errors") if isinstance(body, dict) else None
    if problems:
        return "; ".join(f"{problem.get('field')}: {problem.get('problem')}" for problem in problems)
    return str(body.get("detail", "no reason given")) if isinstance(body, dict) else "no reason given"
