"""Intake's webhook routes: verify the sender, parse, map, hand to the service, answer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from services.intake.api_support import (
    BAD_BODY,
    TOO_LARGE,
    UNAVAILABLE,
    error,
    intake_state,
    parse_json_object,
    reject,
    storable_text,
    store,
)
from services.intake.basic_auth import CredentialsError, check_basic_auth
from services.intake.chargebee_mapping import map_chargebee_event
from services.intake.mapping_common import Ignored
from services.intake.schemas import WebhookAck
from services.intake.service import SUPERSEDED_REASON, Delivery
from services.intake.stripe_mapping import map_stripe_event
from shared.events import Payload
from shared.signing import SignatureError, verify_stripe_signature

STRIPE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: BAD_BODY,
    401: error(
        "The Stripe-Signature header is missing, expired or matches no configured secret",
        "Stripe-Signature matches no configured secret",
    ),
    413: TOO_LARGE,
    503: UNAVAILABLE,
}
CHARGEBEE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: BAD_BODY,
    401: error(
        "Basic credentials are missing or wrong, or none are configured", "Chargebee webhook credentials are wrong"
    ),
    413: TOO_LARGE,
    503: UNAVAILABLE,
}

# The delivery table's column sizes.
MAX_ID_LENGTH = 255
MAX_TYPE_LENGTH = 128

router = APIRouter(tags=["webhooks"])


def map_or_ignore(
    source: str, event_type: str, mapper: Callable[[dict[str, Any]], Payload], event: dict[str, Any]
) -> tuple[Payload | None, str | None]:
    """The mapped event, or None with the reason it is ignored; 400 when a needed field is bad."""
    try:
        return mapper(event), None
    except Ignored as ignored:
        return None, str(ignored)
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as problem:  # AttributeError: a list where an object belongs
        raise reject(
            source, 400, f"the {event_type} event is missing or has a bad field: {problem}", event_type=event_type
        ) from None


def parse(source: str, body: bytes) -> dict[str, Any]:
    """The authenticated body as a JSON object; 400 (counted as rejected) when it is not one."""
    try:
        return parse_json_object(body)
    except HTTPException as problem:
        raise reject(source, 400, str(problem.detail)) from None


def identify(source: str, event: dict[str, Any], *, type_key: str) -> tuple[str, str]:
    """The event's id and type, which must be strings that fit the delivery table."""
    event_id, event_type = event.get("id"), event.get(type_key)
    if not isinstance(event_id, str) or not isinstance(event_type, str) or not event_id or not event_type:
        raise reject(source, 400, f"a {source.capitalize()} event needs a string id and {type_key}")
    if len(event_id) > MAX_ID_LENGTH or len(event_type) > MAX_TYPE_LENGTH:
        raise reject(source, 400, f"the event id or {type_key} is too long")
    return event_id, event_type


async def accept(
    request: Request,
    *,
    source: str,
    body: bytes,
    event: dict[str, Any],
    event_id: str,
    event_type: str,
    mapper: Callable[[dict[str, Any]], Payload],
) -> Response:
    """Map the verified event, record it once, and say what became of it."""
    mapped, reason = map_or_ignore(source, event_type, mapper, event)
    delivery = Delivery(
        source=source,
        external_id=event_id,
        event_type=event_type,
        payload=event,
        correlation_id=request.scope["state"]["correlation_id"],
        payload_json=storable_text(body),
    )
    outcome = await store(intake_state(request), delivery, mapped, reason)
    explained = {"ignored": reason, "superseded": SUPERSEDED_REASON}
    ack = WebhookAck(outcome=outcome, event_id=event_id, reason=explained.get(outcome))
    # Answered as ready bytes: FastAPI's response-model validation and encoding cost more than the ack itself.
    return Response(ack.model_dump_json(exclude_none=True), media_type="application/json")


@router.post(
    "/webhooks/stripe",
    response_model=WebhookAck,
    response_model_exclude_none=True,
    responses=STRIPE_ERRORS,
    summary="Receive a Stripe webhook (verified by Stripe-Signature)",
    description="Answers 200 for every genuine event: accepted, duplicate, ignored (not about a "
    "cancellation) or superseded (older than what is known for the subscription).",
)
async def stripe_webhook(request: Request) -> Response:
    state = intake_state(request)
    body = await request.body()
    try:
        verify_stripe_signature(
            request.headers.get("stripe-signature"),
            body,
            state.stripe_secrets,
            tolerance=state.settings.stripe_tolerance_seconds,
        )
    except SignatureError as problem:
        raise reject("stripe", 401, str(problem)) from None
    event = parse("stripe", body)
    event_id, event_type = identify("stripe", event, type_key="type")
    return await accept(
        request,
        source="stripe",
        body=body,
        event=event,
        event_id=event_id,
        event_type=event_type,
        mapper=map_stripe_event,
    )


@router.post(
    "/webhooks/chargebee",
    response_model=WebhookAck,
    response_model_exclude_none=True,
    status_code=200,
    responses=CHARGEBEE_ERRORS,
    summary="Receive a Chargebee webhook (HTTP basic auth)",
    description="Chargebee counts only HTTP 200 as delivered, so every genuine event is answered 200. "
    "Events of one subscription are ordered by its resource_version.",
)
async def chargebee_webhook(request: Request) -> Response:
    settings = intake_state(request).settings
    username = settings.chargebee_webhook_username
    password = settings.chargebee_webhook_password
    try:
        check_basic_auth(
            request.headers.get("authorization"),
            username=username.get_secret_value() if username else None,
            password=password.get_secret_value() if password else None,
        )
    except CredentialsError as problem:
        raise reject("chargebee", 401, str(problem), headers={"WWW-Authenticate": 'Basic realm="brink"'}) from None
    body = await request.body()
    event = parse("chargebee", body)
    event_id, event_type = identify("chargebee", event, type_key="event_type")
    return await accept(
        request,
        source="chargebee",
        body=body,
        event=event,
        event_id=event_id,
        event_type=event_type,
        mapper=map_chargebee_event,
    )
