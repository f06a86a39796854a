"""Signed session cookies made from an API token, and the CSRF token tied to each session."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import SecretStr

COOKIE = "brink_desk"
SALT = "brink.desk.session"


@dataclass(frozen=True)
class DeskSession:
    """Who signed in (an optional display name), which token they used, and their CSRF token."""

    token_id: str
    csrf: str
    name: str | None = None


def token_id(token: str) -> str:
    """A fingerprint of a token; the cookie never carries the token itself."""
    return hashlib.sha256(f"{SALT}:{token}".encode()).hexdigest()[:32]


def signing_key(*, secret_key: SecretStr | None, api_tokens: list[SecretStr]) -> str:
    """The configured key, or one derived from the API tokens so that rotating them ends every session."""
    if secret_key is not None:
        return secret_key.get_secret_value()
    joined = "\n".join(sorted(token.get_secret_value() for token in api_tokens))
    return hmac.new(SALT.encode(), joined.encode(), hashlib.sha256).hexdigest()


class SessionCodec:
    """Turns sessions into signed, timestamped cookie values and back."""

    def __init__(self, *, key: str, max_age_seconds: int, api_tokens: list[SecretStr]) -> None:
        self._serializer = URLSafeTimedSerializer(key, salt=SALT)
        self.max_age_seconds = max_age_seconds
        self._live_ids = {token_id(token.get_secret_value()) for token in api_tokens}

    def new(self, *, token: str, name: str | None) -> tuple[DeskSession, str]:
        """A fresh session for a token already checked, and its cookie value."""
        session = DeskSession(token_id=token_id(token), csrf=secrets.token_urlsafe(32), name=name or None)
        value = self._serializer.dumps({"t": session.token_id, "c": session.csrf, "n": session.name})
        return session, value

    def read(self, value: str | None) -> DeskSession | None:
        """The session in a cookie, or None when it is missing, forged, expired or its token was withdrawn."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=self.max_age_seconds)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("t") not in self._live_ids or not isinstance(data.get("c"), str):
            return None
        return DeskSession(token_id=data["t"], csrf=data["c"], name=data.get("n"))


def csrf_matches(session: DeskSession, presented: str | None) -> bool:
    """Constant-time check of the form's CSRF token against the session's."""
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())
