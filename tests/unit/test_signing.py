"""The Stripe signature primitive, checked against the vector in the fixtures' AUTH.md."""

from __future__ import annotations

import pytest

from shared.signing import SignatureError, stripe_signature_header, verify_stripe_signature

VECTOR_SECRET = "whsec_test_secret"
VECTOR_BODY = b'{"id":"evt_test","object":"event","type":"customer.subscription.deleted"}'
VECTOR_HEADER = "t=1492774577,v1=3630fb87f039573a6204e9718de1f9144e5d23421533d7bcb25321784a876a51"


VECTOR_TIME = 1492774577


def test_published_vector_verifies_at_its_own_time() -> None:
    assert verify_stripe_signature(VECTOR_HEADER, VECTOR_BODY, [VECTOR_SECRET], now=VECTOR_TIME) == VECTOR_TIME


def test_a_timestamp_in_the_future_beyond_the_tolerance_is_refused() -> None:
    """Replay protection both ways: t = year 2100 would otherwise be replayable for 74 years."""
    assert verify_stripe_signature(VECTOR_HEADER, VECTOR_BODY, [VECTOR_SECRET], now=VECTOR_TIME - 300) == VECTOR_TIME
    with pytest.raises(SignatureError, match="more than 300 s in the future"):
        verify_stripe_signature(VECTOR_HEADER, VECTOR_BODY, [VECTOR_SECRET], now=VECTOR_TIME - 301)
    year_2100 = 4_102_444_800
    header = stripe_signature_header([VECTOR_SECRET], VECTOR_BODY, year_2100)
    with pytest.raises(SignatureError, match="in the future"):
        verify_stripe_signature(header, VECTOR_BODY, [VECTOR_SECRET])


def test_one_changed_byte_of_the_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="matches no configured secret"):
        verify_stripe_signature(
            VECTOR_HEADER, VECTOR_BODY.replace(b"evt_test", b"evt_tesT"), [VECTOR_SECRET], now=VECTOR_TIME
        )


def test_vector_is_too_old_with_the_default_tolerance() -> None:
    with pytest.raises(SignatureError, match="older than the 300 s tolerance"):
        verify_stripe_signature(VECTOR_HEADER, VECTOR_BODY, [VECTOR_SECRET])


def test_signing_reproduces_the_vector() -> None:
    assert stripe_signature_header([VECTOR_SECRET], VECTOR_BODY, 1492774577) == VECTOR_HEADER


def test_any_of_several_secrets_and_signatures_matches_during_rotation() -> None:
    header = stripe_signature_header(["whsec_old", "whsec_new"], b"{}", 1_700_000_000)
    assert verify_stripe_signature(header, b"{}", ["whsec_new"], now=1_700_000_100) == 1_700_000_000
    assert verify_stripe_signature(header, b"{}", ["whsec_other", "whsec_old"], now=1_700_000_100)


def test_v0_signatures_are_ignored_so_a_downgrade_is_refused() -> None:
    good = stripe_signature_header(["whsec_a"], b"{}", 1_700_000_000).split(",")[1].removeprefix("v1=")
    with pytest.raises(SignatureError, match="no v1 signature"):
        verify_stripe_signature(f"t=1700000000,v0={good}", b"{}", ["whsec_a"], now=1_700_000_000)


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, "missing"),
        ("", "missing"),
        ("v1=abc", "no timestamp"),
        ("t=abc,v1=abc", "not a number"),
    ],
)
def test_malformed_headers_say_what_is_wrong(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        verify_stripe_signature(header, b"{}", ["whsec_a"])
