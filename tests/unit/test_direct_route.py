"""A webhook route is served directly, without FastAPI's dependency solving: one that asks for a dependency
(an auth check, say) is refused when the app is built, rather than silently run without it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from pydantic import SecretStr

from shared.web import create_app


@asynccontextmanager
async def no_lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield


async def refuse_everyone() -> None:
    raise HTTPException(403, "nobody may")


def app_with(router: APIRouter) -> FastAPI:
    return create_app(
        service="direct",
        title="direct",
        description="direct",
        lifespan=no_lifespan,
        readiness={},
        api_tokens=[SecretStr("k3y-" + "0123456789abcdef")],
        direct_routers=[router],
    )


def test_a_direct_route_with_a_dependency_is_refused_at_build_time() -> None:
    router = APIRouter()

    @router.post("/webhooks/guarded")
    async def guarded(request: Request, _: None = Depends(refuse_everyone)) -> Response:
        return Response("in")

    with pytest.raises(TypeError, match="refuse_everyone"):
        app_with(router)


def test_a_direct_route_with_a_parameter_is_refused_too() -> None:
    router = APIRouter()

    @router.post("/webhooks/{source}")
    async def by_source(request: Request, source: str) -> Response:
        return Response(source)

    with pytest.raises(TypeError, match="source"):
        app_with(router)


async def test_a_direct_route_taking_the_request_alone_is_served() -> None:
    router = APIRouter()

    @router.post("/webhooks/plain")
    async def plain(request: Request) -> Response:
        return Response(await request.body())

    app = app_with(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://direct") as client:
        response = await client.post("/webhooks/plain", content=b"hello")
    assert response.status_code == 200 and response.content == b"hello"
