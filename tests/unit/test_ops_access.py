"""Metrics and the API documentation are for operators: a token from BRINK_OPS_TOKENS, or loopback when none is
configured. Probes stay open, and the readiness probe names what fails without the error's text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from shared.web import create_app

OPS_TOKEN = "ops-" + "5b0c9e7d21f84a36"
API_TOKEN = "api-" + "e3a1c4b59d7f6028"
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.7", 50000)  # where Stripe's (or anyone's) requests come from
OPS_PAGES = ["/metrics", "/openapi.json", "/docs", "/redoc", "/docs/assets/swagger-ui-bundle.js"]
LEAKY_ERROR = 'password authentication failed for user "brink" at db.internal.example:5432'


@asynccontextmanager
async def no_lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield


async def database_down() -> None:
    raise OSError(LEAKY_ERROR)


async def fine() -> None:
    return None


def app_with(ops_tokens: list[str]) -> FastAPI:
    return create_app(
        service="opsgate",
        title="ops gate",
        description="ops gate",
        lifespan=no_lifespan,
        readiness={"database": database_down, "broker": fine},
        api_tokens=[SecretStr(API_TOKEN)],
        ops_tokens=[SecretStr(token) for token in ops_tokens],
    )


def client(app: FastAPI, peer: tuple[str, int]) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=peer), base_url="http://brink")


@pytest.mark.parametrize("path", OPS_PAGES)
async def test_without_ops_tokens_only_loopback_clients_reach_the_operations_pages(path: str) -> None:
    app = app_with([])
    async with client(app, LOOPBACK) as local:
        assert (await local.get(path)).status_code == 200
    async with client(app, REMOTE) as remote:
        refused = await remote.get(path)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "an operations bearer token is required"}


@pytest.mark.parametrize("path", OPS_PAGES)
async def test_with_ops_tokens_the_operations_pages_need_one_from_anywhere(path: str) -> None:
    app = app_with([OPS_TOKEN])
    async with client(app, REMOTE) as remote:
        assert (await remote.get(path, headers={"Authorization": f"Bearer {OPS_TOKEN}"})).status_code == 200
        for wrong in (f"Bearer {API_TOKEN}", f"Bearer {OPS_TOKEN}x", OPS_TOKEN, ""):
            assert (await remote.get(path, headers={"Authorization": wrong})).status_code == 401, wrong
    async with client(app, LOOPBACK) as local:  # a configured token is needed from this machine too
        assert (await local.get(path)).status_code == 401


async def test_the_refusal_does_not_tell_whether_ops_tokens_are_configured() -> None:
    bodies = []
    for tokens in ([], [OPS_TOKEN]):
        async with client(app_with(tokens), REMOTE) as remote:
            bodies.append((await remote.get("/metrics")).content)
    assert bodies[0] == bodies[1]


async def test_the_documentation_loads_its_scripts_from_brink_not_from_a_cdn() -> None:
    async with client(app_with([]), LOOPBACK) as local:
        for page in ("/docs", "/redoc"):
            html = (await local.get(page)).text
            assert "https://" not in html and "//cdn" not in html, html
            scripts = [part.split('"')[0] for part in html.split('src="')[1:]]
            assert scripts and all(src.startswith("/docs/assets/") for src in scripts), scripts
            for src in scripts:
                assert (await local.get(src)).status_code == 200


async def test_probes_stay_open_and_readiness_names_the_failing_check_without_its_text() -> None:
    async with client(app_with([OPS_TOKEN]), REMOTE) as remote:
        assert (await remote.get("/healthz")).status_code == 200
        ready = await remote.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "failing", "broker": "ok"}
    assert "brink" not in ready.text and "db.internal" not in ready.text


async def test_the_400_for_a_nul_in_the_url_is_documented_where_parameters_are_taken() -> None:
    from fastapi import APIRouter, Query

    router = APIRouter()

    @router.get("/v1/things")
    async def things(owner: str | None = Query(default=None)) -> dict[str, str | None]:
        return {"owner": owner}

    app = create_app(
        service="nul",
        title="nul",
        description="nul",
        lifespan=no_lifespan,
        readiness={},
        api_tokens=[SecretStr(API_TOKEN)],
        api_routers=[router],
    )
    assert "400" in app.openapi()["paths"]["/v1/things"]["get"]["responses"]
    async with client(app, LOOPBACK) as local:
        refused = await local.get("/v1/things?owner=a%00b", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert refused.status_code == 400 and "NUL" in refused.json()["detail"]
