"""Billing connection settings: a key that is empty, a placeholder or of the wrong kind stops intake with one line
naming the setting (never the key); the vendors' addresses are https, or plain http only to this machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.intake.settings import IntakeSettings
from shared.billing.connect import billing_connections
from shared.settings import describe_error
from tests.unit.test_settings import start_intake

TOKEN = "t0k3n-abcdefghijklmnop"


def refusal(**values: object) -> str:
    with pytest.raises(ValidationError) as refused:
        IntakeSettings(_env_file=None, api_tokens=[TOKEN], **values)  # type: ignore[call-arg]
    return describe_error(refused.value, IntakeSettings)


@pytest.mark.parametrize(
    "values, line",
    [
        ({"stripe_api_key": ""}, "setting BRINK_STRIPE_API_KEY is invalid: BRINK_STRIPE_API_KEY is empty"),
        (
            {"stripe_api_key": "sk_test_..."},
            "setting BRINK_STRIPE_API_KEY is invalid: BRINK_STRIPE_API_KEY holds a placeholder",
        ),
        (
            {"stripe_api_key": "changeme"},
            "setting BRINK_STRIPE_API_KEY is invalid: BRINK_STRIPE_API_KEY holds a placeholder",
        ),
        (
            {"stripe_api_key": "pk_live_4eC39HqLyjWDarjtT1zdp7dc"},
            "setting BRINK_STRIPE_API_KEY is invalid: BRINK_STRIPE_API_KEY must be a secret (sk_) or restricted (rk_) key",
        ),
        (
            {"stripe_api_base": "http://stripe.example.com"},
            "setting BRINK_STRIPE_API_BASE is invalid: BRINK_STRIPE_API_BASE must use https",
        ),
        (
            {"chargebee_site": "acme"},
            "settings are invalid: set both BRINK_CHARGEBEE_SITE and BRINK_CHARGEBEE_API_KEY, or neither",
        ),
        (
            {"chargebee_site": "acme", "chargebee_api_key": "xxx"},
            "setting BRINK_CHARGEBEE_API_KEY is invalid: BRINK_CHARGEBEE_API_KEY holds a placeholder",
        ),
        (
            {"chargebee_site": "acme.chargebee.com", "chargebee_api_key": "live_abc123"},
            "setting BRINK_CHARGEBEE_SITE is invalid",
        ),
        ({"reconcile_interval_seconds": 0}, "setting BRINK_RECONCILE_INTERVAL_SECONDS is invalid"),
    ],
)
def test_a_bad_billing_setting_is_one_line_naming_it(values: dict[str, object], line: str) -> None:
    assert refusal(**values).startswith(line)


def test_the_line_never_shows_the_key() -> None:
    key = "pk_live_" + "7" * 24
    assert key not in refusal(stripe_api_key=key)


def test_a_connection_is_made_only_for_a_configured_vendor() -> None:
    settings = IntakeSettings(
        _env_file=None,  # type: ignore[call-arg]
        api_tokens=[TOKEN],
        stripe_api_key="rk_live_" + "5" * 24,
        chargebee_api_base="http://127.0.0.1:9",
    )
    assert list(billing_connections(settings, purpose="a test")) == ["stripe"]
    assert "5" * 24 not in repr(settings)  # the key is a SecretStr


def test_intake_refuses_to_start_with_a_placeholder_key(tmp_path: Path) -> None:
    result = start_intake(tmp_path, BRINK_API_TOKENS=TOKEN, BRINK_STRIPE_API_KEY="sk_live_...")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "brink: setting BRINK_STRIPE_API_KEY is invalid: BRINK_STRIPE_API_KEY holds a placeholder, not a real key"
    ]
