"""Intake's HTTP layer: verify, parse, hand to the service, answer."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlalchemy.exc import DBAPIError, OperationalError

from services.intake.schemas import WebhookAck
from services.intake.service import Delivery, record_delivery
from services.intake.settings import IntakeSettings
from services.intake.stripe_mapping import Ignored, map_stripe_event
from shared.db import transaction
from shared.deps import RuntimeDep
from shared.logs import get_logger
from shared.runtime import Runtime
from shared.signing import SignatureError, verify_stripe_signature

log = get_logger("services.intake.api")

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not a JSON event"},
    401: {"description": "The signature or credentials are wrong"},
    413: {"description": "The body is larger than 1 MiB"},
    503: {"description": "The database is unreachable; the sender should retry"},
}

router = APIRouter(tags=["webhooks"])


def get_settings(request: Request) -> IntakeSettings:
    return request.app.state.settings


SettingsDep = Annotated[IntakeSettings, Depends(get_settings)]


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise HTTPException(400, f"body is not valid JSON: {error}") from None
    if not isinstance(parsed, dict):
        raise HTTPException(400, "body must be a JSON object")
    return parsed


async def store(runtime: Runtime, delivery: Delivery, event: Any, ignored_reason: str | None) -> str:
    """Commit the delivery and its outbox row together; 503 when the database cannot take it."""
    try:
        async with transaction(runtime.sessions) as session:
            outcome = await record_delivery(session, delivery=delivery, event=event, ignored_reason=ignored_reason)
    except (OperationalError, DBAPIError, OSError) as error:
        log.error("intake.database.unavailable", error=str(error).splitlines()[0])
        raise HTTPException(503, "the database is unavailable; retry later") from None
    if outcome == "accepted":
        runtime.wake_relay()
    log.info(f"intake.webhook.{outcome}", source=delivery.source, external_id=delivery.external_id,
             event_type=delivery.event_type)
    return outcome


@router.post("/webhooks/stripe", response_model=WebhookAck, responses=ERRORS,
             summary="Receive a Stripe webhook (verified by Stripe-Signature)")
async def stripe_webhook(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> WebhookAck:
    body = await request.body()
    try:
        verify_stripe_signature(
            request.headers.get("stripe-signature"), body,
            [secret.get_secret_value() for secret in settings.stripe_webhook_secrets],
            tolerance=settings.stripe_tolerance_seconds,
        )
    except SignatureError as error:
        log.warning("intake.webhook.rejected", source="stripe", reason=str(error))
        raise HTTPException(401, str(error)) from None
    event = parse_json_object(body)
    if not isinstance(event.get("id"), str) or not isinstance(event.get("type"), str):
        raise HTTPException(400, "a Stripe event needs a string id and type")
    try:
        mapped, reason = map_stripe_event(event), None
    except Ignored as ignored:
        mapped, reason = None, str(ignored)
    except (KeyError, TypeError, ValueError) as error:
        raise HTTPException(400, f"the {event['type']} event is missing or has a bad field: {error}") from None
    delivery = Delivery(source="stripe", external_id=event["id"], event_type=event["type"], payload=event,
                        correlation_id=request.scope["state"]["correlation_id"])
    outcome = await store(runtime, delivery, mapped, reason)
    return WebhookAck(outcome=outcome, event_id=event["id"])


