"""Desk sessions kept server-side: the cookie carries a signed opaque id, the table a hash of it.

Ending a session (signing out, deactivating the person, a new password) deletes its row, so the cookie stops
working on the next request. Every sign-in gets a new id; a session expires a fixed time after sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.models import DeskSession, Person

COOKIE = "brink_desk"
SALT = "brink.desk.session"


@dataclass(frozen=True)
class SignedInPerson:
    """The person behind a request, the CSRF token of their session, and which session it is."""

    person: Person
    csrf: str
    id_hash: str

    @property
    def name(self) -> str:
        return self.person.name

    @property
    def email(self) -> str:
        return self.person.email

    @property
    def role(self) -> str:
        return self.person.role


def signing_key(*, secret_key: SecretStr | None, api_tokens: list[SecretStr]) -> str:
    """The configured key, or one derived from the API tokens."""
    if secret_key is not None:
        return secret_key.get_secret_value()
    joined = "\n".join(sorted(token.get_secret_value() for token in api_tokens))
    return hmac.new(SALT.encode(), joined.encode(), hashlib.sha256).hexdigest()


def _hash(session_id: str) -> str:
    """What the table keeps: a leaked table row cannot be replayed as a cookie."""
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """Starts, reads and ends desk sessions."""

    def __init__(self, *, key: str, lifetime: timedelta) -> None:
        self._serializer = URLSafeSerializer(key, salt=SALT)
        self.lifetime = lifetime

    def _id_in(self, cookie: str | None) -> str | None:
        if not cookie or len(cookie) > 512:
            return None
        try:
            value = self._serializer.loads(cookie)
        except BadSignature:
            return None
        return value if isinstance(value, str) else None

    async def start(
        self, db: AsyncSession, person: Person, *, now: datetime, address: str | None, replacing: str | None
    ) -> tuple[SignedInPerson, str]:
        """A new session (a new id, whatever the browser had) and its cookie value; the one replaced ends."""
        await self.end(db, replacing)
        await repository.end_expired_desk_sessions(db, now=now)
        session_id = secrets.token_urlsafe(32)
        row = DeskSession(
            id_hash=_hash(session_id),
            person_id=person.id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + self.lifetime,
            address=(address or "")[:64] or None,
        )
        db.add(row)
        await db.flush()
        return SignedInPerson(person=person, csrf=row.csrf, id_hash=row.id_hash), self._serializer.dumps(session_id)

    async def read(self, db: AsyncSession, cookie: str | None, *, now: datetime) -> SignedInPerson | None:
        """The signed-in person, or None when the cookie is missing, forged, expired, ended or its person inactive."""
        session_id = self._id_in(cookie)
        if session_id is None:
            return None
        found = await repository.live_desk_session(db, _hash(session_id), now=now)
        if found is None:
            return None
        row, person = found
        return SignedInPerson(person=person, csrf=row.csrf, id_hash=row.id_hash)

    async def end(self, db: AsyncSession, cookie: str | None) -> None:
        """End the session a cookie names (nothing happens for a bad or unknown cookie)."""
        session_id = self._id_in(cookie)
        if session_id is not None:
            await repository.end_desk_sessions(db, id_hash=_hash(session_id))


def csrf_matches(session: SignedInPerson, presented: str | None) -> bool:
    """Constant-time check of the form's CSRF token against the session's."""
    return presented is not None and hmac.compare_digest(session.csrf.encode(), presented.encode())
