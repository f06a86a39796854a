"""Save offers on the desk: propose one from a case (a playbook step of action ``offer``, or any offer of the file),
apply it, undo it; the approvals page, where the roles that approve (as the offers file's limits say) approve or reject
what waits for them; the budget page.
Each form calls the same use case as its /v1/ route; the use cases check limits and roles, and a refusal is shown
on the page it came from (403 for a role that may not decide)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.outreach import offers
from services.outreach.desk.case_actions import Refusal, acting_on_case, done_redirect
from services.outreach.desk.case_view import render_case
from services.outreach.desk.session import SignedInPerson, csrf_matches
from services.outreach.desk.web import DbSession, NotAllowed, SignedIn, csrf_refused, form_text, page

router = APIRouter(prefix="/desk", include_in_schema=False)
APPROVALS = ("/desk/offers", "approvals")
STATUS_OF = {
    offers.OfferNotFound: 404,
    offers.OfferConflict: 409,
    offers.NotAllowed: 403,
    offers.OfferInvalid: 422,
    offers.BillingFailed: 502,
}
# What the case page says after an offer was applied, by the status it ended in.
DONE_BY_STATUS = {"applied": "offer_applied", "awaiting_approval": "offer_waiting", "failed": "offer_failed"}


def _context(request: Request) -> offers.OfferContext:
    return request.app.state.offer_context


@router.post("/cases/{case_id}/offers")
async def propose(request: Request, case_id: str, session: SignedIn, db: DbSession) -> Response:
    try:
        form, _ = await acting_on_case(request, session, db, case_id)
        await offers.propose(
            db, case_id, offer=form_text(form, "offer", 64), by=session.email, context=_context(request)
        )
    except Refusal as refusal:
        return refusal.response
    except offers.OfferError as error:
        return await _refused_on_case(request, session, db, case_id, error)
    return done_redirect(case_id, "offer_proposed", "offers")


@router.post("/cases/{case_id}/offers/{offer_id}/apply")
async def apply(request: Request, case_id: str, offer_id: str, session: SignedIn, db: DbSession) -> Response:
    try:
        await acting_on_case(request, session, db, case_id)
        if offer_id not in {offer.id for offer in await offers.offers_of_case(db, case_id)}:
            raise offers.OfferNotFound(f"There is no offer {offer_id} on this case.")
        applied = await offers.apply(db, offer_id, by=session.email, context=_context(request))
    except Refusal as refusal:
        return refusal.response
    except offers.OfferError as error:
        return await _refused_on_case(request, session, db, case_id, error)
    return done_redirect(case_id, DONE_BY_STATUS.get(applied.status, "offer_applied"), "offers")


@router.post("/cases/{case_id}/offers/{offer_id}/undo")
async def undo(request: Request, case_id: str, offer_id: str, session: SignedIn, db: DbSession) -> Response:
    """Take an applied offer back where its billing system allows (the same use case as its /v1/ route)."""
    try:
        form, _ = await acting_on_case(request, session, db, case_id)
        if offer_id not in {offer.id for offer in await offers.offers_of_case(db, case_id)}:
            raise offers.OfferNotFound(f"There is no offer {offer_id} on this case.")
        undone = await offers.undo(
            db, offer_id, by=session.email, reason=form_text(form, "reason", 1000) or None, context=_context(request)
        )
    except Refusal as refusal:
        return refusal.response
    except offers.OfferError as error:
        return await _refused_on_case(request, session, db, case_id, error)
    return done_redirect(case_id, "offer_undone" if undone.status == "undone" else "offer_not_undone", "offers")


async def _refused_on_case(
    request: Request, session: SignedInPerson, db: Any, case_id: str, error: offers.OfferError
) -> Response:
    return await render_case(
        request, session, db, case_id, status_code=STATUS_OF.get(type(error), 422), error=str(error)
    )


@router.get("/offers", response_class=HTMLResponse)
async def approvals_page(request: Request, session: SignedIn, db: DbSession, done: str | None = None) -> HTMLResponse:
    return await _approvals(request, session, db, done=done)


async def _approvals(
    request: Request,
    session: SignedInPerson,
    db: Any,
    *,
    done: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """What waits for an approval this person's role may give, oldest first (with an error after a refusal)."""
    context = _context(request)
    if not context.rules.approves(session.role):
        raise NotAllowed(
            "Approvals are for the roles the offers file lets grant more than another role, or spend past the budget.",
            session=session,
        )
    waiting = await offers.offers_with_status(db, "awaiting_approval", limit=200, offset=0)
    mine = [offer for offer in waiting if session.role in (offer.approver_roles or "").split(",")]
    titles = {name: terms.title for name, terms in context.rules.offers.items()}
    customers = await offers.customers_of(db, {offer.case_id for offer in mine})
    return page(
        request,
        "approvals.html",
        {
            "offers": mine,
            "others": len(waiting) - len(mine),
            "titles": titles,
            "customers": customers,
            "done": done,
            "error": error,
        },
        status_code=status_code,
        session=session,
    )


@router.post("/offers/{offer_id}/{decision}")
async def decide(request: Request, offer_id: str, decision: str, session: SignedIn, db: DbSession) -> Response:
    """Approve (and so apply) or reject an offer waiting for approval; a reason is required to reject."""
    context = _context(request)
    form = await request.form()
    if not csrf_matches(session, str(form.get("csrf") or "")):
        return csrf_refused(request, session)
    if decision not in ("approve", "reject"):
        return page(request, "missing.html", {"what": f"decision {decision[:40]!r}"}, status_code=404, session=session)
    if not context.rules.approves(session.role):
        raise NotAllowed(
            "Only the roles that approve offers (as the offers file says) approve or reject them.",
            session=session,
            back=APPROVALS,
        )
    reason = form_text(form, "reason", 1000) or None
    try:
        if decision == "approve":
            decided = await offers.approve(db, offer_id, by=session.email, reason=reason, context=context)
        elif reason is None:
            return await _approvals(request, session, db, error="Say why the offer is rejected.", status_code=422)
        else:
            decided = await offers.reject(db, offer_id, by=session.email, reason=reason, context=context)
    except offers.NotAllowed as error:
        raise NotAllowed(str(error), session=session, back=APPROVALS) from None
    except offers.OfferError as error:
        status = STATUS_OF.get(type(error), 422)
        return await _approvals(request, session, db, error=str(error), status_code=status)
    return RedirectResponse(f"/desk/offers?done={decided.status}", status_code=303)


@router.get("/budget", response_class=HTMLResponse)
async def budget_page(request: Request, session: SignedIn, db: DbSession) -> HTMLResponse:
    """Each team's budget in the current period: total, spent, committed, remaining."""
    report = await offers.current_budget(db, context=_context(request))
    return page(request, "budget.html", {"budget": report}, session=session)
