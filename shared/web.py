"""What every service's HTTP app has: health, metrics, body limits, errors as JSON without tracebacks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pydantic import SecretStr

from shared import metrics
from shared.auth import bearer_auth
from shared.logs import bind_contextvars, clear_contextvars, get_logger

log = get_logger("shared.web")

ReadinessCheck = Callable[[], Awaitable[None]]
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


class BodyTooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """Answers 413 before reading more than ``max_bytes`` of a request body."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await self._too_large(send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body is larger than the limit of {self.max_bytes} bytes"}, status_code=413
        )
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


class CorrelationMiddleware:
    """Every request gets a correlation id (from ``X-Correlation-Id`` or new) bound to its log lines."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-correlation-id", b"").decode("latin-1")[:128]
        correlation_id = incoming or str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = correlation_id
        clear_contextvars()
        bind_contextvars(correlation_id=correlation_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-correlation-id", correlation_id.encode()))
            await send(message)

        await self.app(scope, receive, send_with_id)


def health_router(checks: dict[str, ReadinessCheck], *, timeout: float = 3.0) -> APIRouter:
    """``/healthz``: the process answers. ``/readyz``: every dependency check passes."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Database and broker reachable, no stuck work",
        responses={503: {"description": "A dependency is unreachable or work is stuck"}},
    )
    async def readyz() -> JSONResponse:
        results: dict[str, str] = {}
        for name, check in checks.items():
            try:
                await asyncio.wait_for(check(), timeout=timeout)
                results[name] = "ok"
            except Exception as error:  # readiness reports, it does not raise
                results[name] = f"failing: {str(error) or error.__class__.__name__}"
        ready = all(value == "ok" for value in results.values())
        return JSONResponse({"status": "ready" if ready else "not ready", "checks": results},
                            status_code=200 if ready else 503)

    return router


def create_app(*, service: str, title: str, description: str, lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
               readiness: dict[str, ReadinessCheck], api_tokens: list[SecretStr],
               api_routers: list[APIRouter] = (), public_routers: list[APIRouter] = (),
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """A service's FastAPI app: ``api_routers`` need a bearer token, ``public_routers`` authenticate themselves."""
    app = FastAPI(title=title, description=description, version="1.0", lifespan=lifespan)
    for router in public_routers:
        app.include_router(router)
    require_token = Depends(bearer_auth(api_tokens))
    for router in api_routers:
        app.include_router(router, dependencies=[require_token])
    app.include_router(health_router(readiness))
    app.include_router(metrics.router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(metrics.HTTPMetricsMiddleware, service=service)
    app.add_middleware(CorrelationMiddleware)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(part) for part in issue["loc"] if part != "body"), "problem": issue["msg"]}
            for issue in error.errors()
        ]
        return JSONResponse({"detail": "the request is not valid", "errors": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(RecursionError)
    async def _too_deep(_request: Request, _error: RecursionError) -> JSONResponse:
        return JSONResponse({"detail": "the request body is nested too deeply"}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, error: Exception) -> JSONResponse:
        log.error("http.unexpected_error", error=repr(error), exc_info=True)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    return app
