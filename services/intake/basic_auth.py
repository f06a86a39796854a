"""HTTP basic authentication as Chargebee sends it, compared in constant time. Plain Python."""

from __future__ import annotations

import base64
import binascii
import hmac

WRONG = "Chargebee webhook credentials are wrong"


class CredentialsError(ValueError):
    """The Authorization header is missing, malformed or carries the wrong credentials; ``logged`` is the
    reason for the operator when it differs from what the sender is told."""

    def __init__(self, message: str, *, logged: str | None = None) -> None:
        super().__init__(message)
        self.logged = logged or message


def check_basic_auth(header: str | None, *, username: str | None, password: str | None) -> None:
    """Accept only ``Basic base64(username:password)`` matching the configured pair; refuse all when unset."""
    if not username or password is None:
        # Worded as wrong credentials: a refusal tells a stranger nothing about how intake is set up.
        raise CredentialsError(WRONG, logged="no Chargebee webhook credentials are configured")
    if not header:
        raise CredentialsError("Authorization header is missing (Chargebee sends HTTP basic auth)")
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        raise CredentialsError("Authorization must use the Basic scheme")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CredentialsError("Authorization Basic value is not base64") from None
    given_user, separator, given_password = decoded.partition(b":")  # the password may itself hold ':'
    if not separator:
        raise CredentialsError("Authorization Basic value has no username:password pair")
    # Both halves are always compared, so the time taken says nothing about which one was wrong.
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (user_ok and password_ok):
        raise CredentialsError(WRONG)
