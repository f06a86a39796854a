"""Save offers on the desk, over HTTP against outreach with Stripe played by localstripe: a playbook's offer step
becomes a proposal with its preview and cost; over the CSM's limit it waits; the CSM may neither see approvals nor
approve (403); her manager rejects only with a reason, approves, and the offer is applied at Stripe and on the
case's timeline; the budget page shows what it spent; undone, Stripe's invoice date returns."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx

from services.outreach.cases import open_or_update_case
from services.outreach.clock import SystemClock
from services.outreach.people import add_person, find_by_email, set_password, update_person
from shared.db import transaction
from tests.conftest import TOKEN
from tests.desk_helpers import PASSWORD, sign_in
from tests.integration.test_offers import CSM, World, offers_world
from tests.outreach_helpers import diagnosis

MANAGER = "maria@example.com"
OFFERS = (
    "currency: usd\nperiod: quarter\nbudget_minor: 100000\nmax_per_account_per_year: 3\n"
    "limits:\n  csm: {max_minor: 5000}\n  cs_manager: {max_minor: 50000}\n"
    "offers:\n"
    "  keep_subscription: {kind: keep_subscription, title: Keep the subscription}\n"
    "  free_trial_extension: {kind: free_time, days: 30, title: A month free for the teams that never started}\n"
)


async def desk_world_case(world: World) -> tuple[str, str]:
    """Carla (a CSM reporting to Maria) owns a case whose playbook offers a free trial extension; (case, sub)."""
    customer_id, subscription_id = await world.stripe.subscription()
    await world.stripe.client.v1.subscriptions.update_async(subscription_id, params={"cancel_at_period_end": True})
    async with transaction(world.app.state.runtime.sessions) as session:
        now = datetime.now(UTC)
        await add_person(session, email=MANAGER, name="Maria", role="cs_manager", now=now, password=PASSWORD)
        carla = await find_by_email(session, CSM)
        assert carla is not None
        await update_person(session, carla, now=now, manager_email=MANAGER)
        await set_password(session, carla, PASSWORD, now=now)
        payload = diagnosis(
            now=now,
            root_cause="stakeholders_not_bought_in",
            account_owner=CSM,
            mrr_minor=14_700,
            account_id=f"stripe:{customer_id}",
            cancellation_id=f"stripe:{subscription_id}",
        )
        case = await open_or_update_case(session, payload, policy=world.app.state.policy, clock=SystemClock())
        assert case is not None and case.owner == CSM
        return case.id, subscription_id


def browser(world: World, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=world.app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="https://outreach")


async def test_a_playbook_offer_over_the_csm_limit_is_proposed_approved_and_applied_on_the_desk(
    database_url: str, tmp_path: Path
) -> None:
    offers_file = tmp_path / "offers.yaml"
    offers_file.write_text(OFFERS)
    async with offers_world(database_url, offers_file=offers_file) as world:
        case_id, subscription_id = await desk_world_case(world)
        async with browser(world, "10.2.0.1") as carla, browser(world, "10.2.0.2") as maria:
            carla_csrf = await sign_in(carla, CSM)
            page = (await carla.get(f"/desk/cases/{case_id}")).text
            assert "Propose: A month free for the teams that never started" in page
            assert 'href="/desk/offers"' not in page  # no Approvals in a CSM's navigation

            no_token = await carla.post(f"/desk/cases/{case_id}/offers", data={"offer": "free_trial_extension"})
            assert no_token.status_code == 403 and "That form has expired" in no_token.text
            proposed = await carla.post(
                f"/desk/cases/{case_id}/offers", data={"offer": "free_trial_extension", "csrf": carla_csrf}
            )
            assert proposed.status_code == 303 and "done=offer_proposed" in proposed.headers["location"]
            page = (await carla.get(f"/desk/cases/{case_id}")).text
            assert "costs 147.00 USD" in page and "30 days free: the next invoice moves from" in page
            assert world.writes_to(subscription_id) == 0  # a proposal changes nothing at Stripe
            offer_id = re.search(r'/offers/([0-9a-f-]{36})/apply"', page).group(1)  # type: ignore[union-attr]

            applied = await carla.post(f"/desk/cases/{case_id}/offers/{offer_id}/apply", data={"csrf": carla_csrf})
            assert applied.status_code == 303 and "done=offer_waiting" in applied.headers["location"]
            page = (await carla.get(applied.headers["location"])).text
            assert "it waits for approval" in page and "over the 5000 a csm may grant alone" in page
            assert world.writes_to(subscription_id) == 0

            # Roles are checked on the server: Carla can neither open the approvals nor approve by posting.
            assert (await carla.get("/desk/offers")).status_code == 403
            forced = await carla.post(f"/desk/offers/{offer_id}/approve", data={"csrf": carla_csrf})
            assert forced.status_code == 403 and "Nothing was changed" in forced.text
            assert world.writes_to(subscription_id) == 0

            maria_csrf = await sign_in(maria, MANAGER)
            approvals = (await maria.get("/desk/offers")).text
            assert f'id="offer-{offer_id}"' in approvals and "147.00 USD" in approvals
            assert "Acme GmbH" in approvals and "147.00 USD per month" in approvals  # whom it is for, their revenue
            unknown = await maria.post(f"/desk/offers/{offer_id}/defer", data={"csrf": maria_csrf})
            assert unknown.status_code == 404
            no_reason = await maria.post(f"/desk/offers/{offer_id}/reject", data={"csrf": maria_csrf})
            assert no_reason.status_code == 422 and "Say why the offer is rejected." in no_reason.text
            approved = await maria.post(
                f"/desk/offers/{offer_id}/approve", data={"csrf": maria_csrf, "reason": "worth a month"}
            )
            assert approved.status_code == 303 and approved.headers["location"] == "/desk/offers?done=applied"
            assert "Nothing waits for your approval." in (await maria.get("/desk/offers")).text
            assert world.writes_to(subscription_id) == 1
            at_stripe = await world.stripe.client.v1.subscriptions.retrieve_async(subscription_id)
            assert at_stripe.trial_end is not None and at_stripe.trial_end > at_stripe.current_period_end

            page = (await carla.get(f"/desk/cases/{case_id}")).text
            card = page[page.index(f'id="offer-{offer_id}"') :]
            assert "badge-offer-applied" in card[:200] and "approved by Maria: “worth a month”" in card
            again = await carla.post(f"/desk/cases/{case_id}/offers/{offer_id}/apply", data={"csrf": carla_csrf})
            assert again.status_code == 303 and world.writes_to(subscription_id) == 1  # applying twice applies once

            budget = (await carla.get("/desk/budget")).text
            row = budget[budget.index('id="team-default"') :]
            assert re.findall(r'class="num">([^<]+)<', row)[:4] == [
                "1,000.00 USD",
                "147.00 USD",
                "0.00 USD",
                "853.00 USD",
            ]
            results = (await carla.get("/desk/results")).text  # the results page shows the offer applied
            row = results[results.index('<table class="offer-results">') :]
            assert re.findall(r'class="num">([^<]+)<', row)[:6] == ["1", "0", "1", "0", "147.00 USD", "0.00 USD "]

            # Carla takes it back: Stripe's next invoice returns to its date; the cost stays spent.
            undone = await carla.post(
                f"/desk/cases/{case_id}/offers/{offer_id}/undo", data={"csrf": carla_csrf, "reason": "they left anyway"}
            )
            assert undone.status_code == 303 and "done=offer_undone" in undone.headers["location"]
            back = await world.stripe.client.v1.subscriptions.retrieve_async(subscription_id)
            assert back.trial_end != at_stripe.trial_end
            page = (await carla.get(undone.headers["location"])).text
            assert "Offer undone through the billing system" in page and "Undone by Carla" in page
            assert "badge-offer-undone" in page and "Undo offer" not in page

        # The summary report counts it applied, its customer not yet known to stay (the case is open).
        auth = {"Authorization": f"Bearer {TOKEN}"}
        summary = (await world.outreach.get("/v1/reports/summary", headers=auth)).json()
        assert summary["offers"] == [
            {
                "kind": "free_time",
                "currency": "usd",
                "applied": 1,
                "still_there": 0,
                "pending": 1,
                "not_kept": 0,
                "cost_minor": 14_700,
                "mrr_kept_minor": 0,
                "months_to_recover_cost": None,
            }
        ]
        as_csv = (await world.outreach.get("/v1/reports/summary", headers=auth, params={"format": "csv"})).text
        offer_rows = [row for row in csv.DictReader(io.StringIO(as_csv)) if row["cut"] == "offer_type"]
        assert [(row["group"], row["offers_applied"], row["offer_cost_minor"], row["cases"]) for row in offer_rows] == [
            ("free_time", "1", "14700", "")
        ]
