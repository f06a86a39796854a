"""What every service's HTTP app has: health, metrics, body limits, errors as JSON without tracebacks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import metrics
from shared.auth import bearer_auth
from shared.logs import bind_contextvars, clear_contextvars, get_logger
from shared.ops_access import OpsAccessMiddleware

log = get_logger("shared.web")

ReadinessCheck = Callable[[], Awaitable[None]]
# Swagger UI's and ReDoc's scripts and styles, served from the fastapi-offline package (under /docs, so the
# operations gate covers them too).
DOCS_ASSETS_URL = "/docs/assets"
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
        rejected = False

        async def limited_receive() -> Message:
            nonlocal received, response_started, rejected
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # Answer 413 here: FastAPI turns any error while it parses a JSON body into a 400,
                    # so the exception below may never reach this middleware.
                    if not response_started:
                        response_started = True
                        await self._too_large(send)
                    rejected = True
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if rejected:
                return  # the 413 is already sent; whatever the app answers after it is dropped
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        with suppress(BodyTooLarge):
            await self.app(scope, limited_receive, tracking_send)

    async def _too_large(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body is larger than the limit of {self.max_bytes} bytes"}, status_code=413
        )
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


class NulInUrlMiddleware:
    """Answers 400 to a path or query holding a NUL character: no table can hold one (PostgreSQL refuses it),
    so every id and filter taken from a URL would otherwise fail in the database, as a 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")):
            response = JSONResponse({"detail": "the URL holds a NUL character (%00)"}, status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


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
        # It travels as an AMQP property (at most 255 bytes of UTF-8) and in log lines: a client's id is kept only in
        # printable ASCII. 128 bytes above 0x7f became 256 of UTF-8, and that event could never be published.
        correlation_id = incoming if incoming.isascii() and incoming.isprintable() and incoming else str(uuid.uuid4())
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
                # The probe is open to anyone: it names the check, the log keeps the error's text.
                log.warning("readiness.check_failed", check=name, error=str(error) or error.__class__.__name__)
                results[name] = "failing"
        ready = all(value == "ok" for value in results.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": results}, status_code=200 if ready else 503
        )

    return router


VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["detail", "errors"],
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "errors": {
            "type": "array",
            "title": "Errors",
            "items": {
                "type": "object",
                "required": ["field", "problem"],
                "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
            },
        },
    },
}


UNPARSABLE_BODY: dict[str, Any] = {
    "description": "The body is not valid JSON",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["detail"],
                "properties": {"detail": {"type": "string"}},
            }
        }
    },
}


NUL_IN_URL: dict[str, Any] = {
    "description": "A path or query parameter holds a NUL character",
    "content": UNPARSABLE_BODY["content"],
}


class DirectRoute(Route):
    """A route served by its endpoint alone: no dependency solving, no response-model validation.

    For the few routes where those cost more than the work (a webhook's signature check, parse and one
    statement). The endpoint takes the Request and returns a Response; it is documented by the APIRoute it
    came from. Like FastAPI's routes it puts itself in the scope, so metrics label it by its path template.
    """

    @classmethod
    def serving(cls, route: APIRoute) -> DirectRoute:
        """The route served directly; refused when it asks FastAPI for anything (a ``Depends``, a parameter),
        which served directly would be silently skipped: an auth dependency would let everyone in."""
        dependant = route.dependant
        asked = [
            *(dependency.call for dependency in dependant.dependencies),
            *(parameter.name for parameter in dependant.path_params),
            *(parameter.name for parameter in dependant.query_params),
            *(parameter.name for parameter in dependant.header_params),
            *(parameter.name for parameter in dependant.cookie_params),
            *(parameter.name for parameter in dependant.body_params),
        ]
        if asked:
            names = ", ".join(getattr(item, "__name__", str(item)) for item in asked)
            raise TypeError(
                f"{route.path} is served directly (no dependency solving) but asks for {names}: "
                "take the Request alone, or serve it as an ordinary route"
            )
        return cls(route.path, route.endpoint, methods=list(route.methods or ()), name=route.name)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def document_openapi(app: FastAPI, documented: list[APIRoute]) -> None:
    """Make the OpenAPI 422 schema describe the body the handler below really sends, not FastAPI's default;
    ``documented`` adds routes served directly (``DirectRoute``), which FastAPI does not see."""

    def build() -> dict[str, Any]:
        return get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=[*documented, *app.routes],
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
                schemas.pop("ValidationError", None)
            # FastAPI answers 400 itself when a JSON request body does not parse; say so where it can happen.
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    if isinstance(operation, dict) and "requestBody" in operation:
                        operation.setdefault("responses", {}).setdefault("400", UNPARSABLE_BODY)
                    # NulInUrlMiddleware answers 400 to a parameter holding NUL: say so where one is taken.
                    if isinstance(operation, dict) and operation.get("parameters"):
                        operation.setdefault("responses", {}).setdefault("400", NUL_IN_URL)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    *,
    service: str,
    title: str,
    description: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[Any]],
    readiness: dict[str, ReadinessCheck],
    api_tokens: list[SecretStr],
    ops_tokens: Sequence[SecretStr] = (),
    api_routers: Sequence[APIRouter] = (),
    direct_routers: Sequence[APIRouter] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """A service's FastAPI app: ``api_routers`` need a bearer token; ``direct_routers`` authenticate
    themselves and are served as ``DirectRoute``, first in line. The operations endpoints (metrics and the API
    documentation, whose scripts Brink serves itself, never from a CDN) need one of ``ops_tokens``."""
    app = FastAPIOffline(
        title=title, description=description, version="1.0", lifespan=lifespan, static_url=DOCS_ASSETS_URL
    )
    documented = [route for router in direct_routers for route in router.routes if isinstance(route, APIRoute)]
    for route in reversed(documented):
        app.router.routes.insert(0, DirectRoute.serving(route))
    require_token = Depends(bearer_auth(api_tokens))
    for router in api_routers:
        app.include_router(router, dependencies=[require_token])
    app.include_router(health_router(readiness))
    app.include_router(metrics.router)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=max_body_bytes)
    app.add_middleware(metrics.HTTPMetricsMiddleware, service=service)
    app.add_middleware(CorrelationMiddleware)
    app.add_middleware(NulInUrlMiddleware)
    # Outermost: a refused request costs no body reading, no metrics series and no log context.
    app.add_middleware(OpsAccessMiddleware, ops_tokens=list(ops_tokens))

    document_openapi(app, documented)

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
        log.error("http.unexpected_error", error=repr(error), exc_info=error)
        return JSONResponse({"detail": "internal error; it has been logged"}, status_code=500)

    return app
