"""Every /v1/ route of every service refuses a request without one of the configured bearer tokens,
before it reads the body or touches the database."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import TOKEN
from tests.security.apps import build_apps, v1_routes

WRONG_AUTHORIZATION = {
    "missing": None,
    "empty": "",
    "bearer-without-token": "Bearer ",
    "wrong-token": "Bearer not-the-token",
    "token-prefix": f"Bearer {TOKEN[:-1]}",
    "token-with-suffix": f"Bearer {TOKEN}x",
    "basic-scheme": f"Basic {TOKEN}",
    "token-without-scheme": TOKEN,
}


@pytest.fixture
def apps(sqlite_url: str, amqp_url: str):
    return build_apps(database_url=sqlite_url, amqp_url=amqp_url)


def test_every_service_has_v1_routes(apps) -> None:
    """Guards the test below from passing vacuously."""
    assert all(v1_routes(app) for app in apps.values()), {name: v1_routes(app) for name, app in apps.items()}


@pytest.mark.parametrize("authorization", WRONG_AUTHORIZATION.values(), ids=WRONG_AUTHORIZATION.keys())
async def test_every_v1_route_refuses_a_missing_or_wrong_token(apps, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for name, app in apps.items():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}") as client:
            for method, path in v1_routes(app):
                response = await client.request(method, path, headers=headers, json={})
                assert response.status_code == 401, (name, method, path, response.text)
                assert response.headers.get("www-authenticate") == "Bearer"
                assert TOKEN not in response.text


async def test_the_configured_token_gets_past_the_door(apps) -> None:
    app = apps["outreach"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://outreach") as client:
        response = await client.get("/v1/cases", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
