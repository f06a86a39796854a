"""Optional single sign-on with OpenID Connect: the authorization-code flow with PKCE (Authlib's OAuth 2 client),
the ID token checked against the provider's keys (issuer, audience, expiry, nonce; joserfc, Authlib's JOSE
library), and the verified email matched to an active person, who then gets an ordinary desk session."""

from __future__ import annotations

import hmac
import secrets
import warnings
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import SecretStr

from services.outreach import people
from services.outreach.desk.session import COOKIE
from services.outreach.desk.web import DbSession, desk_state, page, safe_next, set_session_cookie
from shared.logs import get_logger

log = get_logger("outreach.desk.sso")
router = APIRouter(prefix="/desk/sso", include_in_schema=False)
FLOW_COOKIE = "brink_desk_sso"
FLOW_SECONDS = 600


@dataclass
class SingleSignOn:
    """A configured provider; its discovery document and keys are read when first needed."""

    issuer: str
    client_id: str
    client_secret: SecretStr
    name: str
    signing_key: str
    _metadata: dict[str, Any] = field(default_factory=dict)

    def flows(self) -> URLSafeTimedSerializer:
        return URLSafeTimedSerializer(self.signing_key, salt="brink.desk.sso")

    async def metadata(self, client: httpx.AsyncClient) -> dict[str, Any]:
        if not self._metadata:
            found = await client.get(f"{self.issuer.rstrip('/')}/.well-known/openid-configuration")
            self._metadata = found.raise_for_status().json()
        return self._metadata

    def oauth(self, redirect_uri: str) -> Any:
        """Authlib's OAuth 2 client for this provider (imported here: only desks with single sign-on load it)."""
        with warnings.catch_warnings():
            # Authlib 1.9 warns that its httpx integration will move to "httpx2"; it is the supported client today.
            warnings.filterwarnings("ignore", message="The httpx module is deprecated")
            from authlib.integrations.httpx_client import AsyncOAuth2Client
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret.get_secret_value(),
            scope="openid email profile",
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            timeout=10,
        )


def _sso(request: Request) -> SingleSignOn | None:
    return getattr(request.app.state, "sso", None)


def _callback_url(request: Request) -> str:
    return str(request.url_for("sso_callback"))


def _refused(request: Request, message: str, status_code: int = 403) -> HTMLResponse:
    response = page(request, "signin.html", {"next": "/desk", "error": message, "email": ""}, status_code=status_code)
    response.delete_cookie(FLOW_COOKIE, path="/desk/sso")
    return response


@router.get("/start")
async def start(request: Request, next: str | None = None) -> Response:
    """Send the browser to the provider, remembering state, nonce and the PKCE verifier in a signed cookie."""
    sso = _sso(request)
    if sso is None:
        return _refused(request, "Single sign-on is not set up on this desk.", 404)
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            metadata = await sso.metadata(client)
    except (httpx.HTTPError, ValueError) as error:
        log.warning("outreach.desk.sso_unreachable", error=error.__class__.__name__)
        return _refused(request, f"{sso.name} could not be reached; try again, or sign in with a password.", 503)
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    async with sso.oauth(_callback_url(request)) as oauth:
        url, _ = oauth.create_authorization_url(
            metadata["authorization_endpoint"], state=state, nonce=nonce, code_verifier=verifier
        )
    flow = sso.flows().dumps({"state": state, "nonce": nonce, "verifier": verifier, "next": safe_next(next)})
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        FLOW_COOKIE,
        flow,
        max_age=FLOW_SECONDS,
        path="/desk/sso",
        httponly=True,
        secure=desk_state(request).settings.cookie_secure,
        samesite="lax",
    )
    return response


@router.get("/callback", name="sso_callback")
async def callback(request: Request, db: DbSession, code: str = "", state: str = "") -> Response:
    """The provider sends the browser back: check the state, trade the code, check the ID token, sign in."""
    sso = _sso(request)
    if sso is None:
        return _refused(request, "Single sign-on is not set up on this desk.", 404)
    try:
        flow = sso.flows().loads(request.cookies.get(FLOW_COOKIE, ""), max_age=FLOW_SECONDS)
    except BadSignature:
        return _refused(request, "That sign-in took too long or did not start here; try again.", 400)
    if not code or not hmac.compare_digest(str(flow.get("state", "")).encode(), state.encode()):
        return _refused(request, "That sign-in did not start here; try again.", 400)
    try:
        claims = await _verified_claims(sso, code=code, flow=flow, redirect_uri=_callback_url(request))
    except (httpx.HTTPError, JoseError, ValueError, KeyError) as error:
        log.warning("outreach.desk.sso_refused", error=error.__class__.__name__)
        return _refused(request, f"{sso.name} did not confirm who you are; try again, or sign in with a password.")
    person = await people.find_by_email(db, str(claims.get("email") or ""))
    if person is None or not person.active or claims.get("email_verified") is False:
        log.info("outreach.desk.sso_no_person")
        return _refused(request, "No active person on this desk has the email your provider gave; ask an admin.")
    state_ = desk_state(request)
    now = request.app.state.clock.now()
    address = request.client.host if request.client else None
    _, value = await state_.sessions.start(db, person, now=now, address=address, replacing=request.cookies.get(COOKIE))
    response = RedirectResponse(safe_next(flow.get("next")), status_code=303)
    response.delete_cookie(FLOW_COOKIE, path="/desk/sso")
    set_session_cookie(response, request, value)
    log.info("outreach.desk.signed_in", person_id=person.id, by="sso")
    return response


async def _verified_claims(sso: SingleSignOn, *, code: str, flow: dict[str, Any], redirect_uri: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10) as client:
        metadata = await sso.metadata(client)
        keys = KeySet.import_key_set((await client.get(metadata["jwks_uri"])).raise_for_status().json())
    async with sso.oauth(redirect_uri) as oauth:
        token = await oauth.fetch_token(metadata["token_endpoint"], code=code, code_verifier=flow["verifier"])
    decoded = jwt.decode(token["id_token"], keys)
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata.get("issuer", sso.issuer)},
        aud={"essential": True, "value": sso.client_id},
        nonce={"essential": True, "value": flow["nonce"]},
        exp={"essential": True},
    ).validate(decoded.claims)
    return dict(decoded.claims)
