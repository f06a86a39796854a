"""Save offers applied through the billing API: a scheduled cancellation on localstripe, an offer to keep the
subscription proposed and applied by a CSM through outreach's API, and localstripe's subscription no longer
cancelling. Stripe is localstripe driven by the official library, behind a front that counts the writes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from services.outreach.app import build_app
from services.outreach.cases import open_or_update_case
from services.outreach.clock import SystemClock
from services.outreach.people import add_person, find_by_email, update_person
from services.outreach.settings import OutreachSettings
from shared.db import transaction
from shared.events import Money
from tests.billing_helpers import (
    CHARGEBEE_KEY,
    CHARGEBEE_SITE,
    STRIPE_KEY,
    FakeChargebee,
    HttpStandIn,
    StripeAccount,
    fake_chargebee,
    localstripe,
    stripe_front,
)
from tests.conftest import AMQP_BASE_URL, TOKEN, settings_for
from tests.outreach_helpers import diagnosis, wipe_outreach

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CSM = "carla@example.com"


@dataclass
class World:
    stripe: StripeAccount
    front: HttpStandIn
    outreach: httpx.AsyncClient
    app: Any

    async def case_for(
        self, customer_id: str, subscription_id: str, *, currency: str = "usd", source: str = "stripe"
    ) -> dict[str, Any]:
        """A case opened by a diagnosis of this subscription's scheduled cancellation, as the broker brings it."""
        payload = diagnosis(
            now=datetime.now(UTC),
            account_id=f"{source}:{customer_id}",
            cancellation_id=f"{source}:{subscription_id}",
        )
        payload = payload.model_copy(update={"mrr": Money(amount_minor=14_700, currency=currency)})
        async with transaction(self.app.state.runtime.sessions) as session:
            case = await open_or_update_case(session, payload, policy=self.app.state.policy, clock=SystemClock())
            assert case is not None
        return (await self.outreach.get(f"/v1/cases/{case.id}", headers=AUTH)).json()

    def writes_to(self, subscription_id: str) -> int:
        return len(
            [seen for seen in self.front.requests_to(f"/v1/subscriptions/{subscription_id}") if seen.method == "POST"]
        )


@asynccontextmanager
async def offers_world(
    database_url: str, offers_file: Path | None = None, chargebee: FakeChargebee | None = None
) -> AsyncIterator[World]:
    """Outreach's API on the real database, served without its workers (offers need no broker: cases are opened by
    the use case the diagnosis consumer runs), with Stripe connected to localstripe through a front."""
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(localstripe())
        front = await stack.enter_async_context(stripe_front(url))
        overrides: dict[str, Any] = {"stripe_api_key": STRIPE_KEY, "stripe_api_base": front.url}
        if offers_file is not None:
            overrides["offers_file"] = offers_file
        if chargebee is not None:
            overrides.update(
                chargebee_site=CHARGEBEE_SITE, chargebee_api_key=CHARGEBEE_KEY, chargebee_api_base=chargebee.url
            )
        app = build_app(
            settings_for(
                OutreachSettings,
                database_url=database_url,
                amqp_url=AMQP_BASE_URL,
                billing_backoff_seconds=0.05,
                **overrides,
            )
        )
        stack.push_async_callback(app.state.runtime.engine.dispose)
        await wipe_outreach(app.state.runtime.engine)
        # Carla and the managers set up here would take later tests' cases (callbacks run last first).
        stack.push_async_callback(wipe_outreach, app.state.runtime.engine)
        client = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://outreach")
        )
        account = StripeAccount(url)
        stack.push_async_callback(account.close)
        async with transaction(app.state.runtime.sessions) as session:
            await add_person(session, email=CSM, name="Carla", role="csm", now=datetime.now(UTC))
        yield World(stripe=account, front=front, outreach=client, app=app)


async def test_a_csm_keeps_a_subscription_whose_cancellation_is_scheduled(database_url: str) -> None:
    async with offers_world(database_url) as world:
        customer_id, subscription_id = await world.stripe.subscription()
        await world.stripe.client.v1.subscriptions.update_async(subscription_id, params={"cancel_at_period_end": True})
        case = await world.case_for(customer_id, subscription_id)

        proposed = await world.outreach.post(
            f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "keep_subscription", "by": CSM}
        )
        assert proposed.status_code == 201, proposed.text
        offer = proposed.json()
        assert offer["status"] == "proposed" and (offer["cost_minor"], offer["currency"]) == (0, "usd")
        assert offer["preview"].startswith("Removes the cancellation at the end of the period (")
        assert world.writes_to(subscription_id) == 0  # a proposal changes nothing at Stripe

        applied = await world.outreach.post(f"/v1/offers/{offer['id']}/apply", headers=AUTH, json={"by": CSM})
        assert applied.status_code == 200, applied.text
        assert applied.json()["status"] == "applied" and applied.json()["applied_by"] == CSM
        assert applied.json()["verified_at"] is not None
        at_stripe = await world.stripe.client.v1.subscriptions.retrieve_async(subscription_id)
        assert at_stripe.cancel_at_period_end is False and at_stripe.status == "active"
        write = [
            seen for seen in world.front.requests_to(f"/v1/subscriptions/{subscription_id}") if seen.method == "POST"
        ]
        assert write[0].headers.get("Idempotency-Key") == f"brink-offer-{offer['id']}"

        again = await world.outreach.post(f"/v1/offers/{offer['id']}/apply", headers=AUTH, json={"by": CSM})
        assert again.status_code == 200 and again.json()["applied_at"] == applied.json()["applied_at"]
        assert world.writes_to(subscription_id) == 1  # applying twice applied once

        history = (await world.outreach.get(f"/v1/cases/{case['id']}", headers=AUTH)).json()["events"]
        kinds = [event["kind"] for event in history]
        assert kinds.index("offer_proposed") < kinds.index("offer_applied")
        listed = (await world.outreach.get(f"/v1/cases/{case['id']}/offers", headers=AUTH)).json()["items"]
        assert [(item["id"], item["status"]) for item in listed] == [(offer["id"], "applied")]

        # Nothing is scheduled any more: the same offer again has nothing to undo, and says so.
        nothing = await world.outreach.post(
            f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "keep_subscription", "by": CSM}
        )
        assert nothing.status_code == 409 and "has no scheduled cancellation" in nothing.json()["detail"]


async def test_billing_refusing_leaves_the_offer_failed_with_its_message_and_a_retry_is_safe(database_url: str) -> None:
    async with offers_world(database_url) as world:
        customer_id, subscription_id = await world.stripe.subscription()
        await world.stripe.client.v1.subscriptions.update_async(subscription_id, params={"cancel_at_period_end": True})
        case = await world.case_for(customer_id, subscription_id)
        offer = (
            await world.outreach.post(
                f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "keep_subscription", "by": CSM}
            )
        ).json()

        world.front.faults.extend([503] * 5)  # Stripe down through every retry
        failed = await world.outreach.post(f"/v1/offers/{offer['id']}/apply", headers=AUTH, json={"by": CSM})
        assert failed.status_code == 200 and failed.json()["status"] == "failed"
        assert failed.json()["failure"].startswith("stripe: ") and "503" in failed.json()["failure"]
        assert (await world.stripe.client.v1.subscriptions.retrieve_async(subscription_id)).cancel_at_period_end

        retried = await world.outreach.post(f"/v1/offers/{offer['id']}/apply", headers=AUTH, json={"by": CSM})
        assert retried.json()["status"] == "applied" and retried.json()["failure"] is None
        assert not (await world.stripe.client.v1.subscriptions.retrieve_async(subscription_id)).cancel_at_period_end


async def test_refusals_say_why(database_url: str) -> None:
    async with offers_world(database_url) as world:
        customer_id, subscription_id = await world.stripe.subscription()
        await world.stripe.client.v1.subscriptions.update_async(subscription_id, params={"cancel_at_period_end": True})
        case = await world.case_for(customer_id, subscription_id)
        path = f"/v1/cases/{case['id']}/offers"
        keep = {"offer": "keep_subscription", "by": CSM}

        unknown = await world.outreach.post(path, headers=AUTH, json={"offer": "free_lunch", "by": CSM})
        assert unknown.status_code == 422 and unknown.json()["detail"].startswith("offer: no offer 'free_lunch'")
        stranger = await world.outreach.post(path, headers=AUTH, json={**keep, "by": "x@example.com"})
        assert stranger.status_code == 422 and stranger.json()["detail"].startswith("by: no active person")
        assert (await world.outreach.post("/v1/cases/nope/offers", headers=AUTH, json=keep)).status_code == 404
        assert (await world.outreach.post("/v1/offers/nope/apply", headers=AUTH, json={"by": CSM})).status_code == 404
        assert (await world.outreach.post(path, json=keep)).status_code == 401
        approve = await world.outreach.post("/v1/offers/nope/approve", headers=AUTH, json={"by": CSM})
        assert approve.status_code == 404

        await world.stripe.cancel(subscription_id)  # the subscription ends meanwhile: the offer says so
        gone = await world.outreach.post(path, headers=AUTH, json={**keep, "offer": "two_weeks_free"})
        assert gone.status_code == 409 and "has already ended (canceled)" in gone.json()["detail"]

        euro_customer, euro_subscription = await world.stripe.subscription()
        euros = await world.case_for(euro_customer, euro_subscription, currency="eur")
        wrong = await world.outreach.post(f"/v1/cases/{euros['id']}/offers", headers=AUTH, json=keep)
        assert wrong.status_code == 422
        assert wrong.json()["detail"] == "currency: the account pays in eur, the budget is kept in usd"

        unconnected = await world.case_for("16Cabc", "Azabc", source="chargebee")  # no Chargebee settings here
        refused = await world.outreach.post(f"/v1/cases/{unconnected['id']}/offers", headers=AUTH, json=keep)
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            "offers on chargebee subscriptions need a billing connection (BRINK_CHARGEBEE_SITE and BRINK_CHARGEBEE_API_KEY)"
        )


MANAGERS = ("maria@example.com", "mike@example.com")
TIGHT = (
    "currency: usd\nperiod: quarter\nbudget_minor: 40000\nmax_per_account_per_year: 3\n"
    "limits:\n  csm: {max_minor: 5000}\n  cs_manager: {max_minor: 50000}\n"
    "offers:\n"
    "  keep_subscription: {kind: keep_subscription, title: Keep the subscription}\n"
    "  free_month: {kind: free_time, days: 30, title: A month free}\n"
)


async def test_over_the_csm_limit_an_offer_waits_for_a_manager_and_an_exhausted_budget_refuses(
    database_url: str, tmp_path: Path
) -> None:
    offers_file = tmp_path / "offers.yaml"
    offers_file.write_text(TIGHT)
    async with offers_world(database_url, offers_file=offers_file) as world:
        async with transaction(world.app.state.runtime.sessions) as session:
            for email in MANAGERS:
                await add_person(session, email=email, name=email, role="cs_manager", now=datetime.now(UTC))

        async def proposed_and_applied() -> tuple[str, dict[str, Any]]:
            customer_id, subscription_id = await world.stripe.subscription()
            case = await world.case_for(customer_id, subscription_id)  # 14,700 a month
            offer = await world.outreach.post(
                f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "free_month", "by": CSM}
            )
            assert offer.status_code == 201 and offer.json()["cost_minor"] == 14_700, offer.text
            applied = await world.outreach.post(
                f"/v1/offers/{offer.json()['id']}/apply", headers=AUTH, json={"by": CSM}
            )
            return subscription_id, applied.json()

        subscription_id, waiting = await proposed_and_applied()
        assert waiting["status"] == "awaiting_approval"
        assert waiting["approval_reason"] == "costs 14700 usd, over the 5000 a csm may grant alone"
        assert waiting["approver_roles"] == "cs_manager"
        assert world.writes_to(subscription_id) == 0
        before = await world.stripe.client.v1.subscriptions.retrieve_async(subscription_id)
        queue = (await world.outreach.get("/v1/offers", headers=AUTH)).json()["items"]
        assert [offer["id"] for offer in queue] == [waiting["id"]]

        by_csm = await world.outreach.post(f"/v1/offers/{waiting['id']}/approve", headers=AUTH, json={"by": CSM})
        assert by_csm.status_code == 403 and by_csm.json()["detail"].startswith("a csm may not approve")

        # Two managers approve at the same moment: one applies it, the other is told it is decided.
        answers = await asyncio.gather(
            *(
                world.outreach.post(f"/v1/offers/{waiting['id']}/approve", headers=AUTH, json={"by": manager})
                for manager in MANAGERS
            )
        )
        assert sorted(answer.status_code for answer in answers) == [200, 409]
        won = next(answer.json() for answer in answers if answer.status_code == 200)
        lost = next(answer.json() for answer in answers if answer.status_code == 409)
        assert won["status"] == "applied" and won["decided_by"] in MANAGERS
        assert lost["detail"] == f"offer {waiting['id']} is applied by {won['decided_by']}, not awaiting approval"
        assert world.writes_to(subscription_id) == 1
        after = await world.stripe.client.v1.subscriptions.retrieve_async(subscription_id)
        assert after.trial_end == before.current_period_end + 30 * 86_400

        # 14,700 spent; a second one waits (14,700 committed); a third finds 10,600 left and nobody may exceed it.
        _, second = await proposed_and_applied()
        assert second["status"] == "awaiting_approval"
        customer_id, third_subscription = await world.stripe.subscription()
        case = await world.case_for(customer_id, third_subscription)
        third = await world.outreach.post(
            f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "free_month", "by": CSM}
        )
        refused = await world.outreach.post(f"/v1/offers/{third.json()['id']}/apply", headers=AUTH, json={"by": CSM})
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            "team default's budget for the quarter has 10600 usd left (of 40000: 14700 spent, 14700 committed); "
            "this offer costs 14700"
        )

        budget = (await world.outreach.get("/v1/offers/budget", headers=AUTH)).json()
        assert (budget["period"], budget["currency"]) == ("quarter", "usd")
        assert budget["teams"] == [
            {
                "team": "default",
                "lead": None,
                "total_minor": 40_000,
                "spent_minor": 14_700,
                "committed_minor": 14_700,
                "remaining_minor": 10_600,
            }
        ]
        assert budget["period_start"] <= won["applied_at"] < budget["period_end"]

        # Rejected with a reason, the second frees its commitment and is never applied.
        no_reason = await world.outreach.post(
            f"/v1/offers/{second['id']}/reject", headers=AUTH, json={"by": MANAGERS[0]}
        )
        assert no_reason.status_code == 422
        rejected = await world.outreach.post(
            f"/v1/offers/{second['id']}/reject",
            headers=AUTH,
            json={"by": MANAGERS[0], "reason": "they have not used the product in a month"},
        )
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        assert rejected.json()["decision_reason"] == "they have not used the product in a month"
        listed = await world.outreach.get("/v1/offers", headers=AUTH, params={"status": "rejected"})
        assert [offer["id"] for offer in listed.json()["items"]] == [second["id"]]
        assert (await world.outreach.get("/v1/offers", headers=AUTH, params={"status": "won"})).status_code == 422
        again = await world.outreach.post(f"/v1/offers/{second['id']}/apply", headers=AUTH, json={"by": CSM})
        assert again.status_code == 409 and "was rejected by maria@example.com" in again.json()["detail"]
        now_waits = await world.outreach.post(f"/v1/offers/{third.json()['id']}/apply", headers=AUTH, json={"by": CSM})
        assert now_waits.json()["status"] == "awaiting_approval"
        assert (await world.outreach.get("/v1/offers/budget", headers=AUTH)).json()["teams"][0][
            "remaining_minor"
        ] == 10_600


async def test_an_offer_draws_on_the_budget_of_its_proposers_team(database_url: str, tmp_path: Path) -> None:
    offers_file = tmp_path / "offers.yaml"
    offers_file.write_text(TIGHT + "teams:\n  emea: {lead: Maria@example.com, budget_minor: 20000}\n")
    async with offers_world(database_url, offers_file=offers_file) as world:
        async with transaction(world.app.state.runtime.sessions) as session:
            now = datetime.now(UTC)
            await add_person(session, email=MANAGERS[0], name="Maria", role="cs_manager", now=now)
            await add_person(session, email="dora@example.com", name="Dora", role="csm", now=now)
            carla = await find_by_email(session, CSM)
            assert carla is not None
            await update_person(session, carla, now=now, manager_email=MANAGERS[0])

        async def a_month_free(by: str) -> dict[str, Any]:
            customer_id, subscription_id = await world.stripe.subscription()
            case = await world.case_for(customer_id, subscription_id)
            offer = await world.outreach.post(
                f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "free_month", "by": by}
            )
            assert offer.status_code == 201, offer.text
            return offer.json()

        carlas = await a_month_free(CSM)
        assert carlas["team"] == "emea"  # Carla reports to Maria, who leads emea
        assert (await world.outreach.post(f"/v1/offers/{carlas['id']}/apply", headers=AUTH, json={"by": CSM})).json()[
            "status"
        ] == "awaiting_approval"
        approved = await world.outreach.post(
            f"/v1/offers/{carlas['id']}/approve", headers=AUTH, json={"by": MANAGERS[0]}
        )
        assert approved.json()["status"] == "applied", approved.text

        doras = await a_month_free("dora@example.com")  # Dora reports to nobody: the default team
        assert doras["team"] == "default"
        await world.outreach.post(f"/v1/offers/{doras['id']}/apply", headers=AUTH, json={"by": "dora@example.com"})

        budget = (await world.outreach.get("/v1/offers/budget", headers=AUTH)).json()["teams"]
        assert [(t["team"], t["lead"], t["total_minor"], t["spent_minor"], t["committed_minor"]) for t in budget] == [
            ("emea", MANAGERS[0], 20_000, 14_700, 0),
            ("default", None, 40_000, 0, 14_700),
        ]
        # emea has 5,300 left: Carla's next month free is refused, though the default team could pay for it.
        again = await a_month_free(CSM)
        refused = await world.outreach.post(f"/v1/offers/{again['id']}/apply", headers=AUTH, json={"by": CSM})
        assert refused.status_code == 409
        assert refused.json()["detail"].startswith("team emea's budget for the quarter has 5300 usd left (of 20000")


async def test_a_csm_keeps_a_chargebee_subscription_whose_cancellation_is_scheduled(database_url: str) -> None:
    async with fake_chargebee() as chargebee, offers_world(database_url, chargebee=chargebee) as world:
        subscription = chargebee.non_renewing()
        case = await world.case_for(subscription["customer_id"], subscription["id"], source="chargebee")
        offer = await world.outreach.post(
            f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "keep_subscription", "by": CSM}
        )
        assert offer.status_code == 201, offer.text
        assert offer.json()["source"] == "chargebee" and offer.json()["preview"].startswith("Removes the cancellation")

        path = f"/api/v2/subscriptions/{subscription['id']}/remove_scheduled_cancellation"
        for _ in range(2):
            applied = await world.outreach.post(
                f"/v1/offers/{offer.json()['id']}/apply", headers=AUTH, json={"by": CSM}
            )
            assert applied.status_code == 200 and applied.json()["status"] == "applied", applied.text
        writes = chargebee.stand_in.requests_to(path)
        assert len(writes) == 1  # applying twice applied once
        assert writes[0].headers.get("chargebee-idempotency-key") == f"brink-offer-{offer.json()['id']}"
        assert chargebee.subscriptions[subscription["id"]]["status"] == "active"

        nothing = await world.outreach.post(
            f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "keep_subscription", "by": CSM}
        )
        assert nothing.status_code == 409 and "no scheduled cancellation to remove (active)" in nothing.json()["detail"]
