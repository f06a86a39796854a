"""What intake's routes share: settings, JSON parsing, storing a delivery with a 503 when the database is down."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fastapi import HTTPException, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.postgres_deliveries import PostgresDeliveries
from services.intake.service import Delivery, Outcome, record_delivery
from services.intake.settings import IntakeSettings
from shared import metrics
from shared.db import is_database_outage, transaction
from shared.events import Payload
from shared.logs import get_logger
from shared.runtime import Runtime

log = get_logger("services.intake.api")


def error(description: str, example: str) -> dict[str, Any]:
    """An OpenAPI response entry with a JSON error example."""
    return {"description": description, "content": {"application/json": {"example": {"detail": example}}}}


BAD_BODY = error("The body is not a JSON event", "body is not valid JSON: Expecting value")
TOO_LARGE = error("The body is larger than 1 MiB", "request body is larger than the limit of 1048576 bytes")
UNAVAILABLE = error("The database is unreachable; the sender should retry", "the database is unavailable; retry later")


@dataclass(frozen=True)
class IntakeState:
    """What the webhook routes need, built once per app. They read it from the app rather than through
    FastAPI dependencies: solving dependencies cost more per webhook than verifying its signature."""

    settings: IntakeSettings
    runtime: Runtime
    deliveries: PostgresDeliveries | None

    @cached_property
    def stripe_secrets(self) -> list[str]:
        return [secret.get_secret_value() for secret in self.settings.stripe_webhook_secrets]


def intake_state(request: Request) -> IntakeState:
    return request.app.state.intake


# How JSON writes a NUL character, which PostgreSQL's text and jsonb cannot hold.
NUL_ESCAPE = b"\\u0000"


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or 400 saying why not."""
    try:
        parsed = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as problem:
        raise HTTPException(400, f"body is not valid JSON: {problem}") from None
    except RecursionError:
        raise HTTPException(400, "body is nested too deeply to be a webhook event") from None
    if not isinstance(parsed, dict):
        raise HTTPException(400, "body must be a JSON object")
    if NUL_ESCAPE in body:
        # PostgreSQL's text and jsonb cannot hold NUL; refusing would lose the cancellation, so it is replaced.
        parsed = without_nul(parsed)
    return parsed


def storable_text(body: bytes) -> str | None:
    """The body as text to store unchanged, or None where the parsed event must be encoded again: a body
    with NUL characters (replaced while parsing) or not in plain UTF-8 (json.loads also reads a BOM and UTF-16)."""
    if NUL_ESCAPE in body or body.startswith(b"\xef\xbb\xbf"):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def without_nul(value: Any) -> Any:
    """``value`` with every NUL character in its strings and keys replaced by U+FFFD."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {without_nul(key): without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_nul(item) for item in value]
    return value


def count(source: str, event_type: str, outcome: str) -> None:
    """One webhook (or report) handled, by outcome."""
    metrics.WEBHOOKS.labels(source=source, event_type=event_type, outcome=outcome).inc()


def reject(
    source: str, status: int, reason: str, *, event_type: str = "unknown", headers: dict[str, str] | None = None
) -> HTTPException:
    """Log and count a refused request; the caller raises the returned error."""
    log.warning("intake.webhook.rejected", source=source, status=status, reason=reason)
    count(source, event_type, "rejected")
    return HTTPException(status, reason, headers=headers)


async def in_transaction(runtime: Runtime, work: Any) -> Any:
    """Run ``work(session)`` in one committed transaction; 503 when the database cannot take it."""
    try:
        async with transaction(runtime.sessions) as session:
            return await work(session)
    except (DBAPIError, OSError) as problem:
        if not is_database_outage(problem):
            raise
        raise unavailable(problem) from None


def unavailable(problem: BaseException) -> HTTPException:
    """Log the outage; the caller raises the returned 503 so the sender retries."""
    log.error("intake.database.unavailable", error=str(problem).splitlines()[0] if str(problem) else repr(problem))
    return HTTPException(503, "the database is unavailable; retry later")


async def store(state: IntakeState, delivery: Delivery, event: Payload | None, ignored_reason: str | None) -> Outcome:
    """Commit the delivery, the subscription's newest state and the outbox row together."""
    runtime, deliveries = state.runtime, state.deliveries

    async def work(session: AsyncSession) -> Outcome:
        return await record_delivery(session, delivery=delivery, event=event, ignored_reason=ignored_reason)

    if deliveries is None:
        outcome: Outcome = await in_transaction(runtime, work)
    else:
        try:
            outcome = await deliveries.record(delivery, event, ignored_reason)
        except Exception as problem:
            if not is_database_outage(problem):
                raise
            raise unavailable(problem) from None
    if outcome == "accepted":
        runtime.wake_relay()
    count(delivery.source, delivery.event_type, outcome)
    log.info(
        f"intake.webhook.{outcome}",
        source=delivery.source,
        external_id=delivery.external_id,
        event_type=delivery.event_type,
        reason=ignored_reason,
    )
    return outcome
