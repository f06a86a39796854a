"""Intake's webhook routes: verify the sender, parse, map, hand to the service, answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from services.intake.api_support import (
    BAD_BODY,
    TOO_LARGE,
    UNAVAILABLE,
    database_outage_answered_503,
    error,
    intake_state,
    parse_json_object,
    reject,
    storable_text,
)
from services.intake.basic_auth import CredentialsError, check_basic_auth
from services.intake.schemas import WebhookAck
from services.intake.service import UnreadableEvent, record_vendor_event
from shared.signing import SignatureError, check_stripe_signature, parse_stripe_signature

NO_MATCH = "Stripe-Signature matches no configured secret"

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

router = APIRouter(tags=["webhooks"])


def parse(source: str, body: bytes) -> dict[str, Any]:
    """The authenticated body as a JSON object; 400 (counted as rejected) when it is not one."""
    try:
        return parse_json_object(body)
    except HTTPException as problem:
        raise reject(source, 400, str(problem.detail)) from None


async def accept(request: Request, *, source: str, body: bytes, event: dict[str, Any]) -> Response:
    """Record the verified event through intake's one way in, and say what became of it."""
    state = intake_state(request)
    try:
        async with database_outage_answered_503():
            recorded = await record_vendor_event(
                state.deliveries,
                source=source,
                event=event,
                correlation_id=request.scope["state"]["correlation_id"],
                received_via="webhook",
                payload_json=storable_text(body),
                after_accepted=state.runtime.wake_relay,
            )
    except UnreadableEvent as unreadable:
        raise reject(source, 400, str(unreadable), event_type=unreadable.event_type) from None
    ack = WebhookAck(outcome=recorded.outcome, event_id=recorded.event_id, reason=recorded.reason)
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
    # The header first: a request without a fresh, well-formed signature costs neither reading nor hashing
    # its body (up to 1 MiB).
    try:
        signed = parse_stripe_signature(
            request.headers.get("stripe-signature"), tolerance=state.settings.stripe_tolerance_seconds
        )
    except SignatureError as problem:
        raise reject("stripe", 401, str(problem)) from None
    if not state.stripe_secrets:  # answered as a wrong signature: the refusal tells nothing about the setup
        raise reject("stripe", 401, NO_MATCH, logged="no Stripe webhook secret is configured")
    body = await request.body()
    try:
        check_stripe_signature(signed, body, state.stripe_secrets)
    except SignatureError as problem:
        raise reject("stripe", 401, str(problem)) from None
    return await accept(request, source="stripe", body=body, event=parse("stripe", body))


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
        raise reject(
            "chargebee",
            401,
            str(problem),
            logged=problem.logged,
            headers={"WWW-Authenticate": 'Basic realm="brink"'},
        ) from None
    body = await request.body()
    return await accept(request, source="chargebee", body=body, event=parse("chargebee", body))
