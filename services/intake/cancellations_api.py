"""``POST /v1/cancellations``: internal tools report a cancellation; ``Idempotency-Key`` makes retries safe."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request, Response

from services.intake.api_support import (
    TOO_LARGE,
    UNAVAILABLE,
    count,
    database_outage_answered_503,
    error,
    intake_state,
    log,
)
from services.intake.repository import find_delivery
from services.intake.schemas import CancellationAck, CancellationReport
from services.intake.service import Delivery, record_event
from shared.auth import CLIENT_STATE_KEY, UNAUTHORIZED
from shared.events import CancellationReceived
from shared.ids import new_id

SOURCE = "api"
# The delivery key is "<client id (12)>:<key>", in a 255-character column.
MAX_IDEMPOTENCY_KEY_LENGTH = 240
EVENT_TYPE = "cancellation.reported"

router = APIRouter(tags=["cancellations"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    **UNAUTHORIZED,
    413: TOO_LARGE,
    422: error(
        "A field is invalid, or the Idempotency-Key was already used with a different body",
        "Idempotency-Key 'k1' was already used with a different body",
    ),
    503: UNAVAILABLE,
}


def fingerprint(report: CancellationReport) -> str:
    """The report's canonical content, so a retry with the same fields matches whatever its whitespace."""
    return hashlib.sha256(report.model_dump_json().encode()).hexdigest()


def to_event(report: CancellationReport, *, event_id: str) -> CancellationReceived:
    """The Brink event for a reported cancellation."""
    occurred = report.occurred_at or datetime.now(UTC)
    return CancellationReceived(
        cancellation_id=f"{SOURCE}:{report.subscription_id or report.customer_id}",
        account_id=report.account_id or f"{SOURCE}:{report.customer_id}",
        source=SOURCE,
        source_event_id=event_id,
        source_event_type=EVENT_TYPE,
        state_version=int(occurred.timestamp() * 1000),
        **report.model_dump(exclude={"account_id", "occurred_at"}),
    )


@router.post(
    "/v1/cancellations",
    status_code=202,
    response_model=CancellationAck,
    responses=RESPONSES,
    summary="Report a cancellation from an internal tool",
    description="Send the same Idempotency-Key when retrying: the same key with the same body gets the "
    "same answer and publishes nothing new; the same key with a different body is refused (422).",
)
async def report_cancellation(
    report: CancellationReport,
    request: Request,
    response: Response,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_LENGTH)] = None,
) -> CancellationAck:
    event_id = idempotency_key or new_id()
    # Keys are each client's own: two tools (two API tokens) choosing the same key never see each other's
    # answers, nor are refused for each other's bodies.
    delivery_key = f"{request.scope['state'].get(CLIENT_STATE_KEY, 'anonymous')}:{event_id}"
    event = to_event(report, event_id=event_id)
    digest = fingerprint(report)
    delivery = Delivery(
        source=SOURCE,
        external_id=delivery_key,
        event_type=EVENT_TYPE,
        payload={
            "fingerprint": digest,
            "cancellation_id": event.cancellation_id,
            "report": report.model_dump(mode="json"),
        },
        correlation_id=request.scope["state"]["correlation_id"],
        received_via="api",
    )
    state = intake_state(request)
    async with database_outage_answered_503():
        recorded = await record_event(
            state.deliveries, delivery=delivery, event=event, after_accepted=state.runtime.wake_relay
        )
        if recorded.outcome != "duplicate":
            log.info("intake.cancellation.reported", outcome=recorded.outcome, cancellation_id=event.cancellation_id)
            return CancellationAck(outcome=recorded.outcome, cancellation_id=event.cancellation_id, event_id=event_id)
        async with state.runtime.sessions() as session:
            earlier = await find_delivery(session, source=SOURCE, external_id=delivery_key)
    assert earlier is not None  # the unique key just said it exists
    if earlier.payload.get("fingerprint") != digest:
        count(SOURCE, EVENT_TYPE, "rejected")
        raise HTTPException(422, f"Idempotency-Key {event_id!r} was already used with a different body")
    response.headers["Idempotent-Replayed"] = "true"
    cancellation_id = earlier.payload["cancellation_id"]
    log.info("intake.cancellation.reported", outcome=earlier.outcome, replayed=True, cancellation_id=cancellation_id)
    return CancellationAck(outcome=earlier.outcome, cancellation_id=cancellation_id, event_id=event_id)
