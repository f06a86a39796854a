"""Stripe-style webhook signatures: sign (for the test-webhook command and tests) and verify (for intake)."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass

DEFAULT_TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature header is missing, malformed, expired or matches no secret."""


def stripe_signature(secret: str, payload: bytes, timestamp: int) -> str:
    """Lower-case hex HMAC-SHA256 of ``"{t}.{payload}"`` keyed with the whole ``whsec_`` secret."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def stripe_signature_header(secrets: list[str], payload: bytes, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header with one ``v1`` per secret, as Stripe sends while a secret rotates."""
    t = int(time.time()) if timestamp is None else timestamp
    return ",".join([f"t={t}", *(f"v1={stripe_signature(secret, payload, t)}" for secret in secrets)])


# A v1 signature is 64 hex digits; a header much longer than a few of them is not Stripe's.
MAX_HEADER_LENGTH = 1024


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    candidates: list[str]


def parse_stripe_signature(
    header: str | None, *, tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None
) -> SignatureHeader:
    """The header's timestamp and ``v1`` signatures, checked before the body is read: cheap refusals first.

    The timestamp must be within ``tolerance`` seconds of now, either way: a signed request from the future
    would otherwise stay replayable until that future is long past."""
    if not header:
        raise SignatureError("Stripe-Signature header is missing")
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError("Stripe-Signature header is too long")
    timestamp: int | None = None
    candidates: list[str] = []
    for element in header.split(","):
        key, _, value = element.strip().partition("=")
        if key == "t":
            if not value.isdigit() or len(value) > 12:
                raise SignatureError("Stripe-Signature timestamp is not a number")
            timestamp = int(value)
        elif key == "v1":  # v0 and any other scheme are ignored, to prevent downgrades
            candidates.append(value)
    if timestamp is None:
        raise SignatureError("Stripe-Signature has no timestamp")
    if not candidates:
        raise SignatureError("Stripe-Signature has no v1 signature")
    current = time.time() if now is None else now
    if timestamp < current - tolerance:
        raise SignatureError(f"Stripe-Signature timestamp is older than the {tolerance} s tolerance")
    if timestamp > current + tolerance:
        raise SignatureError(f"Stripe-Signature timestamp is more than {tolerance} s in the future")
    return SignatureHeader(timestamp=timestamp, candidates=candidates)


def check_stripe_signature(signed: SignatureHeader, payload: bytes, secrets: list[str]) -> None:
    """Every ``v1`` against every secret, in constant time."""
    if not secrets:
        raise SignatureError("no Stripe webhook secret is configured")
    matched = False
    for secret in secrets:
        expected = stripe_signature(secret, payload, signed.timestamp).encode()
        for candidate in signed.candidates:
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise SignatureError("Stripe-Signature matches no configured secret")


def verify_stripe_signature(
    header: str | None,
    payload: bytes,
    secrets: list[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Parse the header and check its signatures; returns the signed timestamp."""
    signed = parse_stripe_signature(header, tolerance=tolerance, now=now)
    check_stripe_signature(signed, payload, secrets)
    return signed.timestamp
