"""Outreach: cases, tasks and escalation until the customer is saved or let go."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from functools import partial
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from services.outreach import actions_api, api, consumers
from services.outreach.clock import Clock, SystemClock
from services.outreach.desk.routes import mount_desk
from services.outreach.desk.settings import DeskSettings
from services.outreach.ladder_file import LadderError, load_ladders
from services.outreach.models import handled, outbox
from services.outreach.notify.base import Notifier
from services.outreach.notify.email import EmailConfig, EmailNotifier
from services.outreach.notify.slack import SlackConfig, SlackNotifier
from services.outreach.notify.slack_dm import SlackDirectConfig, SlackDirectNotifier
from services.outreach.notify.webhook import WebhookConfig, WebhookNotifier
from services.outreach.offer_actions.base import OfferActions
from services.outreach.offer_file import OfferFileError, load_offer_rules
from services.outreach.offers import OfferContext, OfferError
from services.outreach.playbooks import PlaybookError, load_playbooks
from services.outreach.policy import Policy
from services.outreach.rotation import ROLES
from services.outreach.scheduler import Scheduler
from services.outreach.settings import OutreachSettings
from shared.billing.base import BillingConnection
from shared.billing.connect import billing_connections
from shared.consumer import Batched
from shared.events import CancellationWithdrawn, DiagnosisCompleted, InvoicePaid
from shared.logs import configure_logging
from shared.runtime import Runtime, serve
from shared.settings import load_settings
from shared.web import create_app

SERVICE = "outreach"


def build_notifiers(settings: OutreachSettings, client: httpx.AsyncClient) -> dict[str, Notifier]:
    """One notifier per configured channel."""
    retry = {"attempts": settings.notify_attempts, "backoff_seconds": settings.notify_backoff_seconds}
    notifiers: dict[str, Notifier] = {}
    if settings.slack_webhook_url is not None:
        notifiers["slack"] = SlackNotifier(SlackConfig(webhook_url=settings.slack_webhook_url), client=client, **retry)
    if settings.outbound_webhook_url is not None and settings.outbound_webhook_secret is not None:
        notifiers["webhook"] = WebhookNotifier(
            WebhookConfig(url=settings.outbound_webhook_url, secret=settings.outbound_webhook_secret),
            client=client,
            **retry,
        )
    if settings.smtp_host is not None and settings.smtp_sender is not None:
        email = EmailConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_sender,
            username=settings.smtp_username,
            password=settings.smtp_password,
            tls=settings.smtp_tls,
            ca_file=settings.smtp_ca_file,
            timeout_seconds=settings.notify_timeout_seconds,
        )
        notifiers["email"] = EmailNotifier(
            email, attempts=settings.notify_attempts, backoff_seconds=settings.notify_backoff_seconds
        )
    if settings.slack_bot_token is not None:
        direct = SlackDirectConfig(bot_token=settings.slack_bot_token, api_url=settings.slack_api_url)
        notifiers["slack_dm"] = SlackDirectNotifier(direct, client=client, **retry)
    return notifiers


def build_policy(settings: OutreachSettings, channels: tuple[str, ...]) -> Policy:
    """The playbooks and ladders (validated now, so a bad file stops the start) and the configured rules."""
    playbooks = load_playbooks(settings.playbook_dir)
    return Policy(
        playbooks=playbooks,
        ladders=load_ladders(settings.ladder_dir, playbooks=set(playbooks)),
        working_hours=settings.calendar(),
        time_zone=ZoneInfo(settings.time_zone),
        rotations={role: settings.rotation(role) for role in ROLES},
        high_value_mrr_minor=settings.high_value_mrr_minor,
        due_soon=timedelta(hours=settings.due_soon_hours),
        tried_window=timedelta(days=settings.tried_window_days),
        save_verify=timedelta(days=settings.save_verify_days),
        high_priority=settings.high_priority,
        channels=channels,
    )


def offer_actions(billing: dict[str, BillingConnection]) -> dict[str, OfferActions]:
    """An offer adapter per connected billing system."""
    actions: dict[str, OfferActions] = {}
    stripe = billing.get("stripe")
    if stripe is not None:
        from services.outreach.offer_actions.stripe import StripeOfferActions
        from shared.billing.stripe_connection import StripeConnection

        assert isinstance(stripe, StripeConnection)
        actions["stripe"] = StripeOfferActions(stripe)
    chargebee = billing.get("chargebee")
    if chargebee is not None:
        from services.outreach.offer_actions.chargebee import ChargebeeOfferActions
        from shared.billing.chargebee_connection import ChargebeeConnection

        assert isinstance(chargebee, ChargebeeConnection)
        actions["chargebee"] = ChargebeeOfferActions(chargebee)
    return actions


def build_app(
    settings: OutreachSettings, *, clock: Clock | None = None, desk_settings: DeskSettings | None = None
) -> FastAPI:
    clock = clock or SystemClock()
    runtime = Runtime(service=SERVICE, settings=settings, outbox=outbox, handled=handled)
    client = httpx.AsyncClient(timeout=settings.notify_timeout_seconds)
    notifiers = build_notifiers(settings, client)
    policy = build_policy(settings, tuple(notifiers))
    runtime.consume(
        "diagnoses",
        {
            DiagnosisCompleted.TYPE: Batched(partial(consumers.on_diagnoses_completed, policy=policy, clock=clock)),
        },
    )
    # A queue of its own: a withdrawal may overtake its diagnosis, which the case opening handles. The invoice paid
    # after a withdrawal shares it, so it mostly arrives after the withdrawal it follows.
    runtime.consume(
        "withdrawals",
        {
            CancellationWithdrawn.TYPE: partial(consumers.on_cancellation_withdrawn, policy=policy, clock=clock),
            InvoicePaid.TYPE: partial(consumers.on_invoice_paid, clock=clock),
        },
    )
    scheduler = Scheduler(
        sessions=runtime.sessions,
        policy=policy,
        clock=clock,
        notifiers=notifiers,
        poll_seconds=settings.scheduler_poll_seconds,
        gauge_seconds=settings.gauge_refresh_seconds,
        notify_rounds=settings.notify_rounds,
        notify_backoff=timedelta(seconds=settings.notify_backoff_seconds),
        after_commit=runtime.wake_relay,
    )
    runtime.run_in_background(scheduler.run_timers)
    runtime.run_in_background(scheduler.run_notifications)
    runtime.run_in_background(scheduler.run_gauges)

    async def close_http_client_on_exit() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await client.aclose()

    runtime.run_in_background(close_http_client_on_exit)
    billing = billing_connections(settings, purpose="offers")

    async def close_billing_on_exit() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            for connection in billing.values():
                await connection.close()

    runtime.run_in_background(close_billing_on_exit)

    app = create_app(
        service=SERVICE,
        title="Brink outreach",
        description="Cases, playbook tasks, escalation and outcomes.",
        lifespan=runtime.lifespan,
        api_routers=[api.router, actions_api.router],
        api_tokens=settings.api_tokens,
        ops_tokens=settings.ops_tokens,
        readiness={**runtime.readiness(), "timers": scheduler.check_timers},
    )
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.clock = clock
    app.state.policy = policy
    app.add_exception_handler(OfferError, api.offer_refused)
    app.state.offer_context = OfferContext(
        rules=load_offer_rules(settings.offers_file), actions=offer_actions(billing), clock=clock
    )
    app.state.scheduler = scheduler
    mount_desk(app, api_tokens=settings.api_tokens, settings=desk_settings or DeskSettings())
    return app


def main() -> None:
    settings = load_settings(OutreachSettings)
    desk_settings = load_settings(DeskSettings)
    configure_logging(service=SERVICE, level=settings.log_level, fmt=settings.log_format)
    try:
        load_ladders(settings.ladder_dir, playbooks=set(load_playbooks(settings.playbook_dir)))
        load_offer_rules(settings.offers_file)
    except (PlaybookError, LadderError, OfferFileError) as error:
        print(f"brink: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    serve(lambda: build_app(settings, desk_settings=desk_settings), settings=settings, port=settings.outreach_port)


if __name__ == "__main__":
    main()
