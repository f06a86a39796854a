"""Single sign-on with OpenID Connect against a provider started inside the test (discovery, authorize, token
with PKCE, JWKS; ID tokens signed RS256): a person signs in with it; an unknown email, a forged state, a
token for another client or a replayed nonce sign nobody in."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from services.outreach.app import build_app
from services.outreach.desk.settings import DeskSettings
from services.outreach.settings import OutreachSettings
from tests.browser.conftest import serve
from tests.conftest import settings_for
from tests.desk_helpers import add_person, wipe

CLIENT_ID = "brink-desk"
CLIENT_SECRET = "provider-secret-" + secrets.token_hex(8)


class Provider:
    """A small OpenID provider: it signs whoever the test says is at the browser, as the real ones do."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.codes: dict[str, dict[str, Any]] = {}
        self.user = {"email": "olga@example.com", "email_verified": True}
        self.audience = CLIENT_ID
        self.url = ""

    def app(self) -> Starlette:
        async def discovery(_: Request) -> JSONResponse:
            return JSONResponse(
                {
                    "issuer": self.url,
                    "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token",
                    "jwks_uri": f"{self.url}/jwks",
                    "response_types_supported": ["code"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )

        async def authorize(request: Request) -> RedirectResponse:
            query = request.query_params
            assert query["client_id"] == CLIENT_ID and query["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": query["nonce"], "challenge": query["code_challenge"], **self.user}
            target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            return RedirectResponse(target, status_code=302)

        async def token(request: Request) -> JSONResponse:
            form = await request.form()
            basic = base64.b64decode(request.headers["authorization"].split()[1]).decode()
            grant = self.codes.pop(str(form["code"]), None)
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if basic != f"{CLIENT_ID}:{CLIENT_SECRET}" or grant is None or grant["challenge"] != challenge:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {
                "iss": self.url,
                "sub": grant["email"],
                "aud": self.audience,
                "iat": now,
                "exp": now + 300,
                "nonce": grant["nonce"],
                "email": grant["email"],
                "email_verified": grant["email_verified"],
            }
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, self.key)
            return JSONResponse({"access_token": "at", "token_type": "Bearer", "id_token": id_token})

        async def jwks(_: Request) -> JSONResponse:
            return JSONResponse(KeySet([self.key]).as_dict(private=False))

        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", discovery),
                Route("/authorize", authorize),
                Route("/token", token, methods=["POST"]),
                Route("/jwks", jwks),
            ]
        )


@pytest.fixture
def provider() -> Iterator[Provider]:
    provider = Provider()
    with serve(provider.app()) as url:
        provider.url = url
        yield provider


@pytest.fixture
async def desk(sqlite_url: str, amqp_url: str, provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    await wipe(sqlite_url)
    settings = DeskSettings(
        _env_file=None,
        oidc_issuer=provider.url,
        oidc_client_id=CLIENT_ID,
        oidc_client_secret=CLIENT_SECRET,
        oidc_name="Okta",
    )
    app = build_app(settings_for(OutreachSettings, database_url=sqlite_url, amqp_url=amqp_url), desk_settings=settings)
    async with app.router.lifespan_context(app):
        await add_person(app.state.runtime, "olga@example.com", name="Olga", password=None)  # no password at all
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://outreach") as client:
            yield client
    await wipe(sqlite_url)


async def through_provider(desk: httpx.AsyncClient, *, tamper_state: bool = False) -> httpx.Response:
    """What a browser does: start on the desk, follow the provider's redirect back, land on the callback."""
    started = await desk.get("/desk/sso/start", params={"next": "/desk/cases"})
    assert started.status_code == 303, started.text
    async with httpx.AsyncClient() as browser:
        back = await browser.get(started.headers["location"])
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    query = {key: values[0] for key, values in parse_qs(callback.query).items()}
    if tamper_state:
        query["state"] = "forged"
    return await desk.get(callback.path, params=query)


async def test_a_person_signs_in_through_the_provider(desk: httpx.AsyncClient) -> None:
    signin = await desk.get("/desk/signin")
    assert "Sign in with Okta" in signin.text
    landed = await through_provider(desk)
    assert landed.status_code == 303 and landed.headers["location"] == "/desk/cases"
    page = await desk.get("/desk")
    assert page.status_code == 200 and "Signed in as Olga" in page.text


async def test_nobody_is_signed_in_by_an_unknown_email_a_forged_state_or_another_clients_token(
    desk: httpx.AsyncClient, provider: Provider
) -> None:
    forged = await through_provider(desk, tamper_state=True)
    assert forged.status_code == 400 and "did not start here" in forged.text

    provider.user = {"email": "stranger@example.com", "email_verified": True}
    unknown = await through_provider(desk)
    assert unknown.status_code == 403 and "No active person" in unknown.text

    provider.user = {"email": "olga@example.com", "email_verified": True}
    provider.audience = "some-other-app"
    other = await through_provider(desk)
    assert other.status_code == 403 and "did not confirm who you are" in other.text
    assert (await desk.get("/desk")).status_code == 303  # still signed out
