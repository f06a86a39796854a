"""Bearer tokens for ``/v1/`` routes, compared in constant time."""

from __future__ import annotations

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


def token_matches(presented: str, tokens: list[SecretStr]) -> bool:
    """True when the presented token equals one configured token; every token is compared, always."""
    presented_bytes = presented.encode()
    matched = False
    for token in tokens:
        matched |= hmac.compare_digest(presented_bytes, token.get_secret_value().encode())
    return matched


def bearer_auth(tokens: list[SecretStr]) -> Callable[[Request], Awaitable[None]]:
    """A dependency that refuses requests without one of ``tokens``."""

    # async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request.
    async def require_token(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented or not token_matches(presented.strip(), tokens):
            raise HTTPException(
                status_code=status.HTTP_401_UNAUTHORIZED,
                detail="a valid bearer token is required (Authorization: Bearer <token>)",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_token
