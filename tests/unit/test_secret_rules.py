"""Secrets that an attacker could guess, or that were copied from an example, stop the service at start."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.settings import IntakeSettings
from services.outreach.desk.settings import DeskSettings
from shared.settings import describe_error

STRONG = "k3y-" + "9f2c6d1e8b7a4053"


def intake(**values: Any) -> IntakeSettings:
    return IntakeSettings(_env_file=None, **{"api_tokens": [STRONG], **values})  # type: ignore[call-arg]


def refusal(build: Any, **values: Any) -> str:
    with pytest.raises(ValidationError) as error:
        build(**values)
    return describe_error(error.value, type(build) if isinstance(build, type) else IntakeSettings)


@pytest.mark.parametrize(
    "values, line",
    [
        ({"api_tokens": ["a"]}, "setting BRINK_API_TOKENS is invalid: BRINK_API_TOKENS is shorter than 16"),
        (
            {"api_tokens": ["REPLACE-WITH-A-LONG-RANDOM-TOKEN"]},  # deploy/k8s/secret.example.yaml's placeholder
            "setting BRINK_API_TOKENS is invalid: BRINK_API_TOKENS holds a placeholder",
        ),
        ({"ops_tokens": ["0ps-t0k"]}, "setting BRINK_OPS_TOKENS is invalid: BRINK_OPS_TOKENS is shorter than 16"),
        (
            {"stripe_webhook_secrets": ["whsec_"]},
            "setting BRINK_STRIPE_WEBHOOK_SECRETS is invalid: BRINK_STRIPE_WEBHOOK_SECRETS holds a placeholder",
        ),
        (
            {"stripe_webhook_secrets": ["whsec_abc123"]},
            "setting BRINK_STRIPE_WEBHOOK_SECRETS is invalid: BRINK_STRIPE_WEBHOOK_SECRETS is shorter than 16",
        ),
        (
            {"stripe_webhook_secrets": ["REPLACE-WITH-whsec-FROM-STRIPE"]},
            "setting BRINK_STRIPE_WEBHOOK_SECRETS is invalid: each Stripe webhook secret starts with whsec_",
        ),
        (
            {"chargebee_webhook_username": "chargebee", "chargebee_webhook_password": "pw"},
            "setting BRINK_CHARGEBEE_WEBHOOK_PASSWORD is invalid: BRINK_CHARGEBEE_WEBHOOK_PASSWORD is shorter",
        ),
        (
            {
                "chargebee_webhook_username": "chargebee",
                "chargebee_webhook_password": "REPLACE-WITH-A-LONG-RANDOM-PASSWORD",
            },
            "setting BRINK_CHARGEBEE_WEBHOOK_PASSWORD is invalid: BRINK_CHARGEBEE_WEBHOOK_PASSWORD holds a placeholder",
        ),
        ({"stripe_tolerance_seconds": 0}, "setting BRINK_STRIPE_TOLERANCE_SECONDS is invalid"),
    ],
)
def test_a_weak_or_example_secret_is_refused_with_one_line_naming_it(values: dict[str, Any], line: str) -> None:
    message = refusal(intake, **values)
    assert message.startswith(line), message
    for value in values.values():  # the line names the setting, never the value
        if isinstance(value, list) and value and len(value[0]) > 3:
            assert value[0] not in message


def test_an_empty_desk_secret_key_is_refused_rather_than_signing_with_an_empty_key() -> None:
    with pytest.raises(ValidationError) as error:
        DeskSettings(_env_file=None, secret_key="")  # type: ignore[call-arg]
    assert describe_error(error.value, DeskSettings).startswith(
        "setting BRINK_DESK_SECRET_KEY is invalid: BRINK_DESK_SECRET_KEY holds a placeholder"
    )
    assert DeskSettings(_env_file=None, secret_key=STRONG).secret_key is not None  # type: ignore[call-arg]


def test_long_random_secrets_pass() -> None:
    settings = intake(
        stripe_webhook_secrets=["whsec_" + "0123456789abcdefXYZ"],
        chargebee_webhook_username="chargebee",
        chargebee_webhook_password="pa:ss-" + "0123456789abcdef",
        ops_tokens=[STRONG + "-ops"],
        stripe_tolerance_seconds=300,
    )
    assert len(settings.ops_tokens) == 1
