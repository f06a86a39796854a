"""Stripe signatures exactly as Stripe specifies, and Chargebee basic auth, refused by default."""

from __future__ import annotations

import base64

import pytest

from services.intake.basic_auth import CredentialsError, check_basic_auth
from shared.signing import SignatureError, stripe_signature, stripe_signature_header, verify_stripe_signature

BODY = b'{"id":"evt_test","object":"event","type":"customer.subscription.deleted"}'
NOW = 1_492_774_577


def test_the_published_test_vector_verifies_and_one_changed_byte_does_not() -> None:
    header = "t=1492774577,v1=3630fb87f039573a6204e9718de1f9144e5d23421533d7bcb25321784a876a51"
    assert verify_stripe_signature(header, BODY, ["whsec_test_secret"], now=NOW) == NOW
    with pytest.raises(SignatureError, match="matches no configured secret"):
        verify_stripe_signature(header, BODY.replace(b"evt_test", b"evt_tesT"), ["whsec_test_secret"], now=NOW)


def test_rotation_any_configured_secret_and_any_v1_in_the_header_match() -> None:
    header = stripe_signature_header(["whsec_old", "whsec_new"], BODY, NOW)
    assert header.count("v1=") == 2
    assert verify_stripe_signature(header, BODY, ["whsec_new"], now=NOW) == NOW
    assert verify_stripe_signature(header, BODY, ["whsec_other", "whsec_old"], now=NOW) == NOW
    with pytest.raises(SignatureError):
        verify_stripe_signature(header, BODY, ["whsec_other"], now=NOW)


def test_a_timestamp_older_than_the_tolerance_is_refused() -> None:
    header = stripe_signature_header(["whsec_a"], BODY, NOW)
    assert verify_stripe_signature(header, BODY, ["whsec_a"], tolerance=300, now=NOW + 300) == NOW
    with pytest.raises(SignatureError, match="older than the 300 s tolerance"):
        verify_stripe_signature(header, BODY, ["whsec_a"], tolerance=300, now=NOW + 301)


def test_v0_is_ignored_even_when_it_carries_a_valid_hmac() -> None:
    downgrade = f"t={NOW},v0={stripe_signature('whsec_a', BODY, NOW)}"
    with pytest.raises(SignatureError, match="no v1"):
        verify_stripe_signature(downgrade, BODY, ["whsec_a"], now=NOW)


@pytest.mark.parametrize(
    "header, problem", [(None, "missing"), ("v1=abc", "no timestamp"), ("t=x,v1=abc", "not a number")]
)
def test_malformed_headers_say_what_is_wrong(header: str | None, problem: str) -> None:
    with pytest.raises(SignatureError, match=problem):
        verify_stripe_signature(header, BODY, ["whsec_a"], now=NOW)


def test_no_configured_secret_refuses_everything() -> None:
    with pytest.raises(SignatureError, match="no Stripe webhook secret"):
        verify_stripe_signature(stripe_signature_header(["whsec_a"], BODY, NOW), BODY, [], now=NOW)


def basic(value: str) -> str:
    return "Basic " + base64.b64encode(value.encode()).decode()


def test_basic_auth_accepts_the_pair_and_a_password_holding_colons() -> None:
    check_basic_auth(basic("cb:pa:ss"), username="cb", password="pa:ss")


@pytest.mark.parametrize(
    "header, problem",
    [
        (None, "missing"),
        (basic("cb:wrong"), "wrong"),
        (basic("other:pa:ss"), "wrong"),
        ("Bearer abc", "Basic scheme"),
        ("Basic !!!", "not base64"),
        (basic("no-colon"), "username:password"),
    ],
)
def test_basic_auth_refuses_with_a_reason(header: str | None, problem: str) -> None:
    with pytest.raises(CredentialsError, match=problem):
        check_basic_auth(header, username="cb", password="pa:ss")


def test_basic_auth_refuses_everything_when_unconfigured() -> None:
    with pytest.raises(CredentialsError, match="credentials are wrong") as refused:
        check_basic_auth(basic(":"), username=None, password=None)
    assert refused.value.logged == "no Chargebee webhook credentials are configured"  # the operator's reason
