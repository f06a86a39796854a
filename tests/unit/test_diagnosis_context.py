"""The context source at the edge of the world, played by httpx.MockTransport."""

from __future__ import annotations

import httpx
import pytest

from services.diagnosis.context import ContextSource, ContextUnavailable

ACCOUNT = "stripe:cus_42"
KNOWN = {"company": {"observed_at": "2026-11-20T09:00:00Z", "source": "dnb", "distress": True}}


def source(handler, attempts: int = 3) -> tuple[ContextSource, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request, len(seen))

    return ContextSource(
        base_url="http://context.test/", attempts=attempts, backoff_seconds=0.001, transport=httpx.MockTransport(record)
    ), seen


async def test_known_account_gives_checked_signal_groups() -> None:
    context, seen = source(lambda request, n: httpx.Response(200, json=KNOWN))
    assert await context.fetch(ACCOUNT) == KNOWN
    assert str(seen[0].url) == "http://context.test/accounts/stripe%3Acus_42"


async def test_unknown_account_is_nothing_known_not_a_failure() -> None:
    context, _ = source(lambda request, n: httpx.Response(404, json={"detail": "no such account"}))
    assert await context.fetch(ACCOUNT) == {}


async def test_a_flaky_source_is_retried() -> None:
    context, seen = source(lambda request, n: httpx.Response(503) if n < 3 else httpx.Response(200, json=KNOWN))
    assert await context.fetch(ACCOUNT) == KNOWN
    assert len(seen) == 3


async def test_a_source_that_stays_down_is_unavailable_after_the_retries() -> None:
    def down(request: httpx.Request, n: int) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    context, seen = source(down, attempts=2)
    with pytest.raises(ContextUnavailable, match="unreachable"):
        await context.fetch(ACCOUNT)
    assert len(seen) == 2


async def test_a_body_that_is_not_signals_is_unavailable_with_the_reason() -> None:
    context, seen = source(lambda request, n: httpx.Response(200, json={"usage": {"seats": 3}}))
    with pytest.raises(ContextUnavailable, match="unusable body"):
        await context.fetch(ACCOUNT)
    assert len(seen) == 1  # a wrong body does not get better by asking again


async def test_a_source_that_just_failed_is_not_waited_on_again_at_once() -> None:
    def down(request: httpx.Request, n: int) -> httpx.Response:
        return httpx.Response(502)

    context, seen = source(down, attempts=2)
    with pytest.raises(ContextUnavailable):
        await context.fetch(ACCOUNT)
    with pytest.raises(ContextUnavailable, match="failed recently"):
        await context.fetch("stripe:cus_43")
    assert len(seen) == 2  # the second diagnosis did not wait for the broken source
