"""Password hashing with Argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile). Plain Python."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 1024

_hasher = PasswordHasher()
# Checked when the email is unknown (or has no password), so that answer takes as long as a wrong password.
_DECOY = _hasher.hash("brink decoy password, never anyone's")


class WeakPassword(ValueError):
    """The password is too short or too long; the message says which."""


def check_strength(password: str) -> None:
    """Refuse passwords a person should not use: too short to resist guessing, or absurdly long."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a password has at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """An Argon2id hash (with its salt and parameters) of an acceptable password."""
    check_strength(password)
    return _hasher.hash(password)


def verify(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no stored hash a decoy is checked, so the time taken is the same."""
    try:
        return _hasher.verify(stored_hash or _DECOY, password[:MAX_LENGTH]) and stored_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)
