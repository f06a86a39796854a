"""A save offer over a CSM's limit, in Debian's Chromium against outreach served over real HTTP on PostgreSQL, with
Stripe played by localstripe: Carla proposes the playbook's offer and sees its preview and cost, applying it makes it
wait for approval; she has no approvals page (403); Maria, her manager, approves it from hers; it is applied at
Stripe and on the case's timeline with its cost, and her
team's budget page shows it spent. Screenshots in test-artifacts/desk/offer-*.png."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from playwright.async_api import Page, expect

from services.outreach.app import build_app as build_outreach
from services.outreach.cases import open_or_update_case
from services.outreach.clock import SystemClock
from services.outreach.settings import OutreachSettings
from shared.db import make_engine, make_sessionmaker, transaction
from tests.billing_helpers import STRIPE_KEY, StripeAccount, localstripe
from tests.browser.conftest import serve
from tests.conftest import purge_consumer_queues, settings_for
from tests.desk_helpers import add_person, wipe
from tests.outreach_helpers import diagnosis

LAPTOP = {"width": 1366, "height": 768}
OFFERS = (
    "currency: usd\nperiod: quarter\nbudget_minor: 100000\nmax_per_account_per_year: 3\n"
    "limits:\n  csm: {max_minor: 5000}\n  cs_manager: {max_minor: 50000}\n"
    "offers:\n"
    "  keep_subscription: {kind: keep_subscription, title: Keep the subscription}\n"
    "  free_trial_extension: {kind: free_time, days: 30, title: A month free for the teams that never started}\n"
)


@pytest.fixture
async def stripe_url() -> AsyncIterator[str]:
    async with localstripe() as url:
        yield url


async def sign_in(page: Page, email: str) -> None:
    await page.goto("/desk/signin")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill("correct horse battery staple")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/desk")


async def test_an_offer_over_the_csm_limit_is_approved_by_her_manager_and_applied(
    browser: Any, postgres_url: str, amqp_url: str, stripe_url: str, tmp_path: Path, artifacts: Path
) -> None:
    await wipe(postgres_url)
    await purge_consumer_queues(amqp_url)
    offers_file = tmp_path / "offers.yaml"
    offers_file.write_text(OFFERS)
    settings = settings_for(
        OutreachSettings,
        database_url=postgres_url,
        amqp_url=amqp_url,
        stripe_api_key=STRIPE_KEY,
        stripe_api_base=stripe_url,
        offers_file=offers_file,
    )
    app = build_outreach(settings)
    stripe = StripeAccount(stripe_url)
    # The test's own engine: the app's belongs to the server's event loop, in its thread.
    engine = make_engine(postgres_url)
    db = SimpleNamespace(sessions=make_sessionmaker(engine))
    try:
        await add_person(db, "maria@example.com", role="cs_manager", name="Maria")
        await add_person(db, "carla@example.com", role="csm", name="Carla", manager="maria@example.com")
        customer_id, subscription_id = await stripe.subscription()
        before = await stripe.client.v1.subscriptions.retrieve_async(subscription_id)
        with serve(app) as outreach:
            async with transaction(db.sessions) as session:
                case = await open_or_update_case(
                    session,
                    diagnosis(
                        now=datetime.now(UTC),
                        root_cause="stakeholders_not_bought_in",
                        account_owner="carla@example.com",
                        mrr_minor=14_700,
                        customer_name="Umbra Logistics",
                        account_id=f"stripe:{customer_id}",
                        cancellation_id=f"stripe:{subscription_id}",
                    ),
                    policy=app.state.policy,
                    clock=SystemClock(),
                )
                assert case is not None
                case_id = case.id

            carla_context = await browser.new_context(viewport=LAPTOP, base_url=outreach)
            carla = await carla_context.new_page()
            await sign_in(carla, "carla@example.com")
            await carla.goto(f"/desk/cases/{case_id}")
            await carla.get_by_role("button", name="Propose: A month free for the teams that never started").click()
            await carla.wait_for_url("**done=offer_proposed*")
            offers = carla.locator("ol.offers")
            await expect(offers).to_contain_text("costs 147.00 USD")
            await expect(offers).to_contain_text("30 days free: the next invoice moves from")
            await carla.screenshot(path=str(artifacts / "offer-proposed.png"), full_page=True)

            await offers.get_by_role("button", name="Apply: A month free for the teams that never started").click()
            await carla.wait_for_url("**done=offer_waiting*")
            await expect(offers).to_contain_text("over the 5000 a csm may grant alone")
            await expect(carla.get_by_role("link", name="Approvals")).to_have_count(0)
            refused = await carla.goto("/desk/offers")
            assert refused is not None and refused.status == 403
            await expect(carla.get_by_role("heading", name="Not allowed")).to_be_visible()

            maria_context = await browser.new_context(viewport=LAPTOP, base_url=outreach)
            maria = await maria_context.new_page()
            await sign_in(maria, "maria@example.com")
            await maria.get_by_role("link", name="Approvals").click()
            waiting = maria.locator("table.approvals tbody tr", has_text="A month free")
            await expect(waiting).to_contain_text("147.00 USD")
            await maria.screenshot(path=str(artifacts / "offer-approvals.png"), full_page=True)
            await waiting.get_by_label("Note (optional)").fill("Their new team lead starts Monday")
            await waiting.get_by_role("button", name="Approve and apply").click()
            await maria.wait_for_url("**done=applied*")
            await expect(maria.get_by_role("status")).to_contain_text("approved and applied")
            await maria.get_by_role("link", name="Budget", exact=True).click()
            spent = maria.locator("#team-default td.num")
            await expect(spent).to_have_text(["1,000.00 USD", "147.00 USD", "0.00 USD", "853.00 USD"])
            await maria.screenshot(path=str(artifacts / "offer-budget.png"), full_page=True)

            await carla.goto(f"/desk/cases/{case_id}")
            applied = carla.locator("ol.offers li").first
            await expect(applied).to_contain_text("applied")
            await expect(applied).to_contain_text("costs 147.00 USD")
            await expect(applied).to_contain_text("approved by Maria")
            await expect(carla.locator("ul.history")).to_contain_text("offer applied by Maria")
            await carla.screenshot(path=str(artifacts / "offer-applied.png"), full_page=True)
            for context in (carla_context, maria_context):
                await context.close()

        after = await stripe.client.v1.subscriptions.retrieve_async(subscription_id)
        assert after.trial_end == before.current_period_end + 30 * 86_400  # the next invoice moved a month later
    finally:
        await stripe.close()
        await engine.dispose()
        await wipe(postgres_url)  # people set up here would change how later tests' cases are routed
