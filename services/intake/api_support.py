"""What intake's routes share: settings, JSON parsing, refusing with a reason, a 503 when the database is down."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from fastapi import HTTPException, Request

from services.intake.service import Deliveries
from services.intake.settings import IntakeSettings
from shared import metrics
from shared.db import is_database_outage
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
    deliveries: Deliveries

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
        parsed = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        raise HTTPException(400, "body is nested too deeply to be a webhook event") from None
    except ValueError as problem:  # not JSON, not UTF-8, NaN or Infinity, an integer of over 4,300 digits
        raise HTTPException(400, f"body is not valid JSON: {str(problem)[:200]}") from None
    if not isinstance(parsed, dict):
        raise HTTPException(400, "body must be a JSON object")
    if LONE_SURROGATE_ESCAPE.search(body) and not _encodable(parsed):
        raise HTTPException(400, "body is not valid JSON: a \\u escape names half a surrogate pair, not a character")
    if NUL_ESCAPE in body:
        # PostgreSQL's text and jsonb cannot hold NUL; refusing would lose the cancellation, so it is replaced.
        parsed = without_nul(parsed)
    return parsed


# A \\ud800-\\udfff escape: paired it is one character, alone it is nothing UTF-8 (or PostgreSQL) can hold.
LONE_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _encodable(parsed: Any) -> bool:
    try:
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


# Refusals are counted every time (brink_webhooks_total, outcome rejected) but logged at most once per source,
# status and interval: anonymous 1 MiB posts must not turn into a flood of warnings.
REJECTION_LOG_INTERVAL_SECONDS = 60.0
_last_logged: dict[tuple[str, int], float] = {}
_unlogged: dict[tuple[str, int], int] = {}


def reject(
    source: str,
    status: int,
    reason: str,
    *,
    logged: str | None = None,
    event_type: str = "unknown",
    headers: dict[str, str] | None = None,
) -> HTTPException:
    """Count a refused request, log it unless one like it was logged lately; the caller raises the returned
    error. ``reason`` is the sender's answer; ``logged`` the operator's, when it says more."""
    count(source, event_type, "rejected")
    key, now = (source, status), time.monotonic()
    if now - _last_logged.get(key, -REJECTION_LOG_INTERVAL_SECONDS) >= REJECTION_LOG_INTERVAL_SECONDS:
        _last_logged[key] = now
        log.warning(
            "intake.webhook.rejected",
            source=source,
            status=status,
            reason=logged or reason,
            similar_unlogged=_unlogged.pop(key, 0),
        )
    else:
        _unlogged[key] = _unlogged.get(key, 0) + 1
    return HTTPException(status, reason, headers=headers)


@asynccontextmanager
async def database_outage_answered_503() -> AsyncIterator[None]:
    """A database that cannot take the work now becomes a 503, so the sender retries; other errors pass."""
    try:
        yield
    except Exception as problem:
        if not is_database_outage(problem):
            raise
        raise unavailable(problem) from None


def unavailable(problem: BaseException) -> HTTPException:
    """Log the outage; the caller raises the returned 503 so the sender retries."""
    log.error("intake.database.unavailable", error=str(problem).splitlines()[0] if str(problem) else repr(problem))
    return HTTPException(503, "the database is unavailable; retry later")
