"""The case page: what was said beside what is likely wrong, the playbook as a timeline, and every action on the
case as a form; and who may act on a case (checked here, once, for every form)."""

from __future__ import annotations

from typing import get_args

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import offers, people, service
from services.outreach.desk.session import SignedInPerson
from services.outreach.desk.timeline import timeline
from services.outreach.desk.web import NotAllowed, page
from services.outreach.models import TASK_RESULTS, Case
from shared.events import ConfirmedRootCause, Outcome

# Heads of customer success and admins act on any case.
ACT_ON_ANY = ("admin", "vp_customer_success")


async def may_act(db: AsyncSession, who: SignedInPerson, case: Case) -> bool:
    """Admins and VPs act on any case; others on cases they own or have a task on, or their team does."""
    if who.role in ACT_ON_ANY:
        return True
    involved = {case.owner, *(task.owner for task in case.tasks if task.status == "open")}
    if who.email in involved:
        return True
    team = {member.email for member in await people.team_of(db, who.person)}
    return bool(team & involved)


async def check_may_act(db: AsyncSession, who: SignedInPerson, case: Case) -> None:
    """NotAllowed (403) unless the person may act on the case."""
    if not await may_act(db, who, case):
        raise NotAllowed(
            "This case is not yours, your team's or addressed to you; ask its owner or their manager to reassign it.",
            session=who,
            back=(f"/desk/cases/{case.id}", "the case"),
        )


async def render_case(
    request: Request,
    session: SignedInPerson,
    db: AsyncSession,
    case_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
    done: str | None = None,
) -> HTMLResponse:
    """The case page (with an error above the forms after a refused action)."""
    case = await service.get_case(db, case_id)
    if case is None:
        return page(request, "missing.html", {"what": f"case {case_id}"}, status_code=404, session=session)
    now = request.app.state.clock.now()
    mentioned = {case.owner, *(t.owner for t in case.tasks), *(t.completed_by for t in case.tasks)}
    mentioned |= {event.actor for event in case.events}
    case_offers = await offers.offers_of_case(db, case.id)
    mentioned |= {who for offer in case_offers for who in (offer.proposed_by, offer.decided_by, offer.applied_by)}
    everyone = await people.list_people(db, include_inactive=False)
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
            "may_act": await may_act(db, session, case),
            "colleagues": everyone,
            "playbooks": sorted(request.app.state.policy.playbooks),
            "outcomes": get_args(Outcome),
            "offers": case_offers,
            "offer_terms": request.app.state.offer_context.rules.offers,
            "root_causes": [cause for group in get_args(ConfirmedRootCause) for cause in get_args(group) or [group]],
        },
        status_code=status_code,
        session=session,
    )
