"""Stripe-style webhook signatures: sign (for the test-webhook command and tests) and verify (for intake)."""

from __future__ import annotations

import hashlib
import hmac
import time

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


def verify_stripe_signature(
    header: str | None,
    payload: bytes,
    secrets: list[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check every ``v1`` against every secret in constant time; returns the signed timestamp."""
    if not header:
        raise SignatureError("Stripe-Signature header is missing")
    if not secrets:
        raise SignatureError("no Stripe webhook secret is configured")
    timestamp: int | None = None
    candidates: list[str] = []
    for element in header.split(","):
        key, _, value = element.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("Stripe-Signature timestamp is not a number") from None
        elif key == "v1":  # v0 and any other scheme are ignored, to prevent downgrades
            candidates.append(value)
    if timestamp is None:
        raise SignatureError("Stripe-Signature has no timestamp")
    if not candidates:
        raise SignatureError("Stripe-Signature has no v1 signature")
    matched = False
    for secret in secrets:
        expected = stripe_signature(secret, payload, timestamp).encode()
        for candidate in candidates:
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise SignatureError("Stripe-Signature matches no configured secret")
    current = time.time() if now is None else now
    if tolerance > 0 and timestamp < current - tolerance:
        raise SignatureError(f"Stripe-Signature timestamp is older than the {tolerance} s tolerance")
    return timestamp
