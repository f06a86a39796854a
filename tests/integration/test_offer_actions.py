"""Each offer kind on Stripe and on Chargebee, applied, read back and undone through outreach's API. Stripe is
localstripe through the official library, with ``pause_collection`` and ``discounts`` (which localstripe lacks)
answered in Stripe's documented shape by the front before it (``tests.billing_helpers.StripeGaps``); Chargebee is the
official library against the tests' server in Chargebee's documented shape (``FakeChargebee``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.billing_helpers import FakeChargebee, StripeAccount, fake_chargebee
from tests.integration.test_offers import AUTH, CSM, World, offers_world

EVERY_KIND = (
    "currency: usd\nperiod: quarter\nbudget_minor: 10000000\nmax_per_account_per_year: 10\n"
    "limits:\n  csm: {max_minor: 1000000}\n"
    "offers:\n"
    "  keep_subscription: {kind: keep_subscription, title: Keep the subscription}\n"
    "  two_weeks_free: {kind: free_time, days: 14, title: Two weeks free}\n"
    "  twenty_off_3_months: {kind: discount, months: 3, percent_off: 20, title: Twenty percent off}\n"
    "  pause_2_months: {kind: pause, months: 2, title: Pause for two months}\n"
    "  basic_for_a_year:\n"
    "    {kind: cheaper_plan, months: 12, prices: {stripe: basic, chargebee: basic-USD-monthly}, title: The basic plan}\n"
)


@pytest.fixture
def offers_file(tmp_path: Path) -> Path:
    path = tmp_path / "offers.yaml"
    path.write_text(EVERY_KIND)
    return path


async def proposed(world: World, offer: str, *, cancelled: bool = False) -> tuple[str, dict[str, Any]]:
    """A paying customer's subscription (14,700 a month), its case, and the offer proposed on it by the CSM."""
    customer_id, subscription_id = await world.stripe.subscription()
    if cancelled:
        await world.stripe.cancel(subscription_id)
    case = await world.case_for(customer_id, subscription_id)
    answer = await world.outreach.post(f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": offer, "by": CSM})
    assert answer.status_code == 201, answer.text
    return subscription_id, answer.json()


async def act(world: World, offer: dict[str, Any], action: str) -> dict[str, Any]:
    answer = await world.outreach.post(f"/v1/offers/{offer['id']}/{action}", headers=AUTH, json={"by": CSM})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


async def read_back(world: World, subscription_id: str) -> Any:
    """The subscription as Stripe shows it, through the front that answers for what localstripe lacks."""
    reader = StripeAccount(world.front.url)
    try:
        return await reader.client.v1.subscriptions.retrieve_async(subscription_id, params={"expand": ["discounts"]})
    finally:
        await reader.close()


async def test_a_discount_for_three_months_is_a_repeating_coupon_on_the_subscription_and_undo_removes_it(
    database_url: str, offers_file: Path
) -> None:
    async with offers_world(database_url, offers_file=offers_file) as world:
        subscription_id, offer = await proposed(world, "twenty_off_3_months")
        assert offer["cost_minor"] == 8_820  # 3 x 20% x 14,700
        assert offer["preview"].startswith("20% off the next 3 months of invoices")
        assert (await read_back(world, subscription_id)).discounts == []

        for _ in range(2):
            applied = await act(world, offer, "apply")
            assert applied["status"] == "applied" and applied["verified_at"] is not None
        discounts = (await read_back(world, subscription_id)).discounts
        assert len(discounts) == 1  # applying twice applied once
        coupon = discounts[0].source.coupon
        assert coupon.id == f"brink-offer-{offer['id']}"
        assert (coupon.percent_off, coupon.duration, coupon.duration_in_months) == (20, "repeating", 3)
        second = await world.outreach.post(
            f"/v1/cases/{offer['case_id']}/offers", headers=AUTH, json={"offer": "twenty_off_3_months", "by": CSM}
        )
        assert second.status_code == 409 and "already has a discount" in second.json()["detail"]

        for _ in range(2):
            undone = await act(world, offer, "undo")
            assert undone["status"] == "undone" and undone["undone_by"] == CSM
        assert (await read_back(world, subscription_id)).discounts == []
        undo_writes = [seen for seen in world.front.seen if seen.headers.get("Idempotency-Key", "").endswith("-undo")]
        assert len(undo_writes) == 1  # undoing twice undid once
        events = (await world.outreach.get(f"/v1/cases/{offer['case_id']}", headers=AUTH)).json()["events"]
        assert [event["kind"] for event in events][-2:] == ["offer_applied", "offer_undone"]


async def test_a_pause_voids_invoices_until_it_resumes_and_undo_resumes_collection_now(
    database_url: str, offers_file: Path
) -> None:
    async with offers_world(database_url, offers_file=offers_file) as world:
        subscription_id, offer = await proposed(world, "pause_2_months")
        assert offer["cost_minor"] == 29_400  # 2 x 14,700
        resumes_at = offer["change"]["update"]["pause_collection"]["resumes_at"]
        paid_until = (await read_back(world, subscription_id)).current_period_end
        assert resumes_at == paid_until + 60 * 86_400  # two months of invoices voided, as many as the cost counts
        assert offer["preview"].startswith("Pauses collection for 2 months")

        assert (await act(world, offer, "apply"))["status"] == "applied"
        paused = (await read_back(world, subscription_id)).pause_collection
        assert (paused.behavior, paused.resumes_at) == ("void", resumes_at)

        again = await world.outreach.post(
            f"/v1/cases/{offer['case_id']}/offers", headers=AUTH, json={"offer": "pause_2_months", "by": CSM}
        )
        assert again.status_code == 409 and "collection is already paused" in again.json()["detail"]

        assert (await act(world, offer, "undo"))["status"] == "undone"
        assert (await read_back(world, subscription_id)).pause_collection is None


async def test_a_cheaper_plan_swaps_the_item_prices_the_revenue_given_up_and_undo_moves_it_back(
    database_url: str, offers_file: Path
) -> None:
    async with offers_world(database_url, offers_file=offers_file) as world:
        customer_id, subscription_id = await world.stripe.subscription()
        case = await world.case_for(customer_id, subscription_id)
        missing = await world.outreach.post(
            f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "basic_for_a_year", "by": CSM}
        )
        assert missing.status_code == 409
        assert missing.json()["detail"] == "basic_for_a_year moves to basic, which Stripe does not have"

        product = await world.stripe.client.v1.products.create_async(params={"name": "Basic"})
        await world.stripe.client.v1.plans.create_async(
            params={"id": "basic", "amount": 1900, "currency": "usd", "interval": "month", "product": product.id}
        )
        subscription_id, offer = await proposed(world, "basic_for_a_year")
        original = (await read_back(world, subscription_id))["items"].data[0].plan.id
        assert offer["cost_minor"] == 108_000  # (14,700 - 3 x 1,900) x 12 months
        assert offer["preview"].startswith(f"Moves from plan {original} to basic (5700 usd a month for 3)")

        assert (await act(world, offer, "apply"))["status"] == "applied"
        assert (await read_back(world, subscription_id))["items"].data[0].plan.id == "basic"
        assert (await act(world, offer, "undo"))["status"] == "undone"
        assert (await read_back(world, subscription_id))["items"].data[0].plan.id == original


async def test_keeping_an_ended_subscription_makes_a_new_one_on_the_same_plan_which_undo_refuses_to_end(
    database_url: str, offers_file: Path
) -> None:
    async with offers_world(database_url, offers_file=offers_file) as world:
        ended_id, offer = await proposed(world, "keep_subscription", cancelled=True)
        assert offer["cost_minor"] == 0
        assert (
            "creates a NEW subscription for customer" in offer["preview"]
            and f"{ended_id} stays ended" in (offer["preview"])
        )

        for _ in range(2):
            applied = await act(world, offer, "apply")
        new_id = applied["new_subscription_id"]
        assert new_id and new_id != ended_id and applied["subscription_id"] == ended_id
        ended, new = await read_back(world, ended_id), await read_back(world, new_id)
        assert (ended.status, new.status, new.customer) == ("canceled", "active", ended.customer)
        assert new["items"].data[0].plan.id == ended["items"].data[0].plan.id
        assert new.metadata["brink_offer"] == f"brink-offer-{offer['id']}"
        creates = [seen for seen in world.front.requests_to("/v1/subscriptions") if seen.method == "POST"]
        assert {seen.status for seen in creates} == {200}
        customers = await world.stripe.client.v1.subscriptions.list_async(params={"customer": ended.customer})
        assert [subscription.id for subscription in customers.data] == [new_id]  # applying twice made one

        refused = await world.outreach.post(f"/v1/offers/{offer['id']}/undo", headers=AUTH, json={"by": CSM})
        assert refused.status_code == 409
        assert refused.json()["detail"].startswith(f"offer {offer['id']} cannot be undone: a reactivation on Stripe")


async def test_undo_puts_a_removed_cancellation_back_and_free_time_back_to_the_paid_period(
    database_url: str, offers_file: Path
) -> None:
    async with offers_world(database_url, offers_file=offers_file) as world:
        customer_id, subscription_id = await world.stripe.subscription()
        await world.stripe.client.v1.subscriptions.update_async(subscription_id, params={"cancel_at_period_end": True})
        case = await world.case_for(customer_id, subscription_id)
        path = f"/v1/cases/{case['id']}/offers"
        keep = (await world.outreach.post(path, headers=AUTH, json={"offer": "keep_subscription", "by": CSM})).json()

        early = await world.outreach.post(f"/v1/offers/{keep['id']}/undo", headers=AUTH, json={"by": CSM})
        assert early.status_code == 409 and early.json()["detail"] == (
            f"offer {keep['id']} is proposed; only an applied offer can be undone"
        )
        await act(world, keep, "apply")
        assert not (await read_back(world, subscription_id)).cancel_at_period_end
        assert (await act(world, keep, "undo"))["status"] == "undone"
        assert (await read_back(world, subscription_id)).cancel_at_period_end

        cancel_at = (await read_back(world, subscription_id)).current_period_end + 86_400
        await world.stripe.client.v1.subscriptions.update_async(
            subscription_id, params={"cancel_at_period_end": False, "cancel_at": cancel_at}
        )
        on_a_date = (
            await world.outreach.post(path, headers=AUTH, json={"offer": "keep_subscription", "by": CSM})
        ).json()
        assert on_a_date["change"]["update"] == {"cancel_at": ""}
        await act(world, on_a_date, "apply")
        assert (await read_back(world, subscription_id)).cancel_at is None
        await act(world, on_a_date, "undo")
        assert (await read_back(world, subscription_id)).cancel_at == cancel_at

        paid_until = (await read_back(world, subscription_id)).current_period_end
        free = (await world.outreach.post(path, headers=AUTH, json={"offer": "two_weeks_free", "by": CSM})).json()
        await act(world, free, "apply")
        assert (await read_back(world, subscription_id)).trial_end == paid_until + 14 * 86_400
        await act(world, free, "undo")
        assert (await read_back(world, subscription_id)).trial_end == paid_until


async def test_an_undo_stripe_refuses_leaves_the_offer_applied_with_the_message_and_undoing_again_is_safe(
    database_url: str, offers_file: Path
) -> None:
    async with offers_world(database_url, offers_file=offers_file) as world:
        subscription_id, offer = await proposed(world, "pause_2_months")
        await act(world, offer, "apply")

        world.front.faults.extend([503] * 5)  # Stripe down through every retry
        failed = await act(world, offer, "undo")
        assert failed["status"] == "applied" and failed["failure"].startswith("undo: stripe: ")
        assert "503" in failed["failure"]
        assert (await read_back(world, subscription_id)).pause_collection is not None
        events = (await world.outreach.get(f"/v1/cases/{offer['case_id']}", headers=AUTH)).json()["events"]
        assert events[-1]["kind"] == "offer_undo_failed"

        undone = await act(world, offer, "undo")
        assert undone["status"] == "undone" and undone["failure"] is None
        assert (await read_back(world, subscription_id)).pause_collection is None


async def test_an_offer_on_a_subscription_that_has_ended_since_cannot_be_undone_and_says_why(
    database_url: str, offers_file: Path
) -> None:
    async with offers_world(database_url, offers_file=offers_file) as world:
        subscription_id, offer = await proposed(world, "twenty_off_3_months")
        await act(world, offer, "apply")
        await world.stripe.cancel(subscription_id)

        refused = await world.outreach.post(f"/v1/offers/{offer['id']}/undo", headers=AUTH, json={"by": CSM})
        assert refused.status_code == 409
        assert refused.json()["detail"] == (
            f"subscription {subscription_id} has already ended (canceled): there is nothing to undo"
        )
        listed = (await world.outreach.get(f"/v1/cases/{offer['case_id']}/offers", headers=AUTH)).json()["items"]
        assert [item["status"] for item in listed] == ["applied"]


async def on_chargebee(world: World, subscription: dict[str, Any], offer: str) -> dict[str, Any]:
    case = await world.case_for(subscription["customer_id"], subscription["id"], source="chargebee")
    answer = await world.outreach.post(f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": offer, "by": CSM})
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def writes(chargebee: FakeChargebee, subscription: dict[str, Any], action: str) -> int:
    path = f"/api/v2/subscriptions/{subscription['id']}/{action}"
    return len([seen for seen in chargebee.stand_in.requests_to(path) if seen.status == 200])


async def test_every_kind_on_chargebee_is_applied_once_read_back_and_undone(
    database_url: str, offers_file: Path
) -> None:
    async with fake_chargebee() as chargebee, offers_world(database_url, offers_file, chargebee) as world:
        chargebee.item_price("basic-USD-monthly", price=1900)

        free = chargebee.subscription()
        term_end = free["current_term_end"]
        offer = await on_chargebee(world, free, "two_weeks_free")
        assert offer["cost_minor"] == 6_860 and offer["preview"].startswith("14 days free: the current term ends on")
        for _ in range(2):
            assert (await act(world, offer, "apply"))["status"] == "applied"
        assert free["current_term_end"] == term_end + 14 * 86_400 and writes(chargebee, free, "change_term_end") == 1
        assert (await act(world, offer, "undo"))["status"] == "undone"
        assert free["current_term_end"] == term_end and writes(chargebee, free, "change_term_end") == 2

        discounted = chargebee.subscription()
        offer = await on_chargebee(world, discounted, "twenty_off_3_months")
        await act(world, offer, "apply")
        coupon = chargebee.coupons[f"brink-offer-{offer['id']}"]
        assert (coupon["discount_type"], coupon["discount_percentage"], coupon["duration_type"]) == (
            "percentage",
            20.0,
            "limited_period",
        )
        assert (coupon["period"], coupon["period_unit"], coupon["apply_on"]) == (3, "month", "invoice_amount")
        assert [entry["coupon_id"] for entry in discounted["coupons"]] == [coupon["id"]]
        await act(world, offer, "undo")
        assert discounted["coupons"] == []

        paused = chargebee.subscription()
        offer = await on_chargebee(world, paused, "pause_2_months")
        await act(world, offer, "apply")
        resume_date = offer["change"]["params"]["resume_date"]
        assert (paused["status"], paused["resume_date"]) == ("paused", resume_date)
        await act(world, offer, "undo")
        assert paused["status"] == "active" and "resume_date" not in paused

        moved = chargebee.subscription()
        offer = await on_chargebee(world, moved, "basic_for_a_year")
        assert offer["cost_minor"] == 108_000  # (14,700 - 3 x 1,900) x 12 months
        await act(world, offer, "apply")
        assert moved["subscription_items"][0]["item_price_id"] == "basic-USD-monthly"
        await act(world, offer, "undo")
        assert moved["subscription_items"][0] == {
            "item_price_id": "team-USD-monthly",
            "item_type": "plan",
            "quantity": 3,
            "unit_price": 4900,
        }

        kept = chargebee.non_renewing()
        offer = await on_chargebee(world, kept, "keep_subscription")
        await act(world, offer, "apply")
        assert kept["status"] == "active"
        await act(world, offer, "undo")  # the cancellation put back, at the end of the term
        assert (kept["status"], kept["cancelled_at"]) == ("non_renewing", kept["current_term_end"])
        undo = chargebee.stand_in.requests_to(f"/api/v2/subscriptions/{kept['id']}/cancel_for_items")
        assert [seen.headers.get("chargebee-idempotency-key") for seen in undo] == [f"brink-offer-{offer['id']}-undo"]


async def test_a_cancelled_chargebee_subscription_is_reactivated_and_its_undo_refused(
    database_url: str, offers_file: Path
) -> None:
    async with fake_chargebee() as chargebee, offers_world(database_url, offers_file, chargebee) as world:
        cancelled = chargebee.subscription("cancelled")
        running = chargebee.subscription()
        case = await world.case_for(running["customer_id"], running["id"], source="chargebee")
        refused = await world.outreach.post(
            f"/v1/cases/{case['id']}/offers", headers=AUTH, json={"offer": "keep_subscription", "by": CSM}
        )
        assert refused.status_code == 409  # a running one has nothing to keep
        offer = await on_chargebee(world, cancelled, "keep_subscription")
        assert offer["preview"].startswith(f"Reactivates subscription {cancelled['id']} (cancelled on")

        assert (await act(world, offer, "apply"))["status"] == "applied"
        assert cancelled["status"] == "active" and writes(chargebee, cancelled, "reactivate") == 1
        undo = await world.outreach.post(f"/v1/offers/{offer['id']}/undo", headers=AUTH, json={"by": CSM})
        assert undo.status_code == 409 and "a reactivation has started a new, invoiced term" in undo.json()["detail"]

        pause = await world.outreach.post(
            f"/v1/cases/{offer['case_id']}/offers", headers=AUTH, json={"offer": "pause_2_months", "by": CSM}
        )
        assert pause.status_code == 201  # reactivated, it runs again


async def test_chargebee_refusing_leaves_the_offer_failed_with_its_message(
    database_url: str, offers_file: Path
) -> None:
    async with fake_chargebee() as chargebee, offers_world(database_url, offers_file, chargebee) as world:
        subscription = chargebee.subscription()
        offer = await on_chargebee(world, subscription, "pause_2_months")
        subscription["status"] = "paused"  # paused at Chargebee meanwhile, by someone else

        failed = await act(world, offer, "apply")
        assert failed["status"] == "failed"
        assert failed["failure"] == (
            "chargebee: invalid_state_for_request (400): Only an active subscription can be paused immediately."
        )
        subscription["status"] = "active"
        assert (await act(world, offer, "apply"))["status"] == "applied"  # retrying is safe


async def test_a_retry_after_the_vendor_forgot_the_key_finds_what_the_first_try_made(
    database_url: str, offers_file: Path
) -> None:
    async with offers_world(database_url, offers_file=offers_file) as world:
        subscription_id, offer = await proposed(world, "twenty_off_3_months")
        # A first try made the coupon, its answer was lost, and Stripe has forgotten the key since: the id is taken.
        await world.stripe.client.v1.coupons.create_async(params=offer["change"]["coupon"])
        assert (await act(world, offer, "apply"))["status"] == "applied"
        discounts = (await read_back(world, subscription_id)).discounts
        assert [discount.source.coupon.id for discount in discounts] == [offer["change"]["coupon"]["id"]]

        ended_id, reactivation = await proposed(world, "keep_subscription", cancelled=True)
        made = await world.stripe.client.v1.subscriptions.create_async(params=reactivation["change"]["create"])
        applied = await act(world, reactivation, "apply")
        assert applied["new_subscription_id"] == made.id  # found by its metadata, not made twice
        ended = await read_back(world, ended_id)
        everyone = await world.stripe.client.v1.subscriptions.list_async(params={"customer": ended.customer})
        assert [subscription.id for subscription in everyone.data] == [made.id]


async def test_a_chargebee_refusal_of_a_change_the_subscription_already_shows_counts_as_applied(
    database_url: str, offers_file: Path
) -> None:
    async with fake_chargebee() as chargebee, offers_world(database_url, offers_file, chargebee) as world:
        subscription = chargebee.subscription()
        offer = await on_chargebee(world, subscription, "pause_2_months")
        # The first try paused it but its answer never came back; Chargebee refuses to pause a paused subscription.
        subscription.update(
            status="paused", pause_date=int(time.time()), resume_date=offer["change"]["params"]["resume_date"]
        )

        applied = await act(world, offer, "apply")
        assert applied["status"] == "applied" and applied["failure"] is None
        refused = chargebee.stand_in.requests_to(f"/api/v2/subscriptions/{subscription['id']}/pause")
        assert [seen.status for seen in refused] == [400]
