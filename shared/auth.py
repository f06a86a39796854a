"""Bearer tokens for ``/v1/`` routes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import HTTPException, Request, status
from pydantic import SecretStr

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {
        "description": "Missing or wrong bearer token",
        "content": {"application/json": {"example": {"detail": "a valid bearer token is required"}}},
    }
}


# Where a request's client (which API token it presented) is kept, for what must be kept apart per client.
CLIENT_STATE_KEY = "api_client"


def matching_token(presented: str, tokens: list[SecretStr]) -> SecretStr | None:
    """The configured token equal to the presented one, or None; every token is compared, always."""
    presented_bytes = presented.encode()
    found: SecretStr | None = None
    for token in tokens:
        if hmac.compare_digest(presented_bytes, token.get_secret_value().encode()):
            found = token
    return found


def token_matches(presented: str, tokens: list[SecretStr]) -> bool:
    """True when the presented token equals one configured token; every token is compared, always."""
    return matching_token(presented, tokens) is not None


def client_id(token: SecretStr) -> str:
    """A short, stable name for the client holding ``token``, which never reveals the token."""
    return hashlib.sha256(token.get_secret_value().encode()).hexdigest()[:12]


def bearer_auth(tokens: list[SecretStr]) -> Callable[[Request], Awaitable[None]]:
    """A dependency that refuses requests without one of ``tokens``."""

    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request.
    async def require_token(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        token = matching_token(presented.strip(), tokens) if scheme.lower() == "bearer" and presented else None
        if token is not None:
            request.scope.setdefault("state", {})[CLIENT_STATE_KEY] = client_id(token)
        else:
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_token
