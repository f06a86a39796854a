"""Who may read a service's operations endpoints (metrics and API documentation) on a port the world can reach."""

from __future__ import annotations

import ipaddress

from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.auth import token_matches
from shared.logs import get_logger

log = get_logger("shared.ops_access")

# Intake's port is the one Stripe and Chargebee must reach: what is here is for operators and Prometheus only.
OPS_PATHS = ("/metrics", "/openapi.json", "/docs", "/redoc")


def is_ops_path(path: str) -> bool:
    """``/metrics``, ``/openapi.json``, ``/docs`` (with its assets) and ``/redoc``."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in OPS_PATHS)


def is_loopback(client: tuple[str, int] | None) -> bool:
    """The request came from this machine (127.0.0.0/8 or ::1)."""
    if client is None:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


class OpsAccessMiddleware:
    """The operations endpoints answer a bearer token from ``BRINK_OPS_TOKENS``; with none configured, only
    loopback clients (``make run`` on a laptop). Everything else passes through untouched."""

    def __init__(self, app: ASGIApp, *, ops_tokens: list[SecretStr]) -> None:
        self.app = app
        self.ops_tokens = ops_tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ops_path(scope["path"]) or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        log.info("ops.refused", path=scope["path"], tokens_configured=bool(self.ops_tokens))
        # One answer whether or not tokens are configured, so a stranger learns nothing about the setup.
        refusal = JSONResponse(
            {"detail": "an operations bearer token is required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
        await refusal(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        if not self.ops_tokens:
            return is_loopback(scope.get("client"))
        headers = dict(scope.get("headers") or [])
        scheme, _, presented = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and bool(presented) and token_matches(presented.strip(), self.ops_tokens)
