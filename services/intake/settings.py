"""Intake's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.billing.settings import BillingSettings
from shared.settings import SecretList, check_secret, optional_secret, split_commas


class IntakeSettings(BillingSettings):
    intake_port: int = Field(default=8000, ge=1, le=65535)
    # Processes serving the intake port together; intake's work is CPU in Python, so one per core it may use.
    intake_processes: int = Field(default=1, ge=1, le=64)
    stripe_webhook_secrets: SecretList = Field(default_factory=list)
    # How far a Stripe-Signature timestamp may be from now, either way; it is the replay protection, so never 0.
    stripe_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    chargebee_webhook_username: SecretStr | None = None
    chargebee_webhook_password: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # The reconciler: how often it lists what the billing systems sent, how far back each listing starts before
    # the previous one ended (events become listable a little after they occur), how far back the very first
    # listing reaches (the vendors retry webhooks for about three days), and how long one instance holds the turn.
    reconcile_interval_seconds: float = Field(default=300, gt=0)
    reconcile_overlap_seconds: float = Field(default=600, ge=0)
    reconcile_first_days: float = Field(default=3, gt=0, le=30)
    reconcile_lease_seconds: float = Field(default=60, gt=0)

    _split_secrets = field_validator("stripe_webhook_secrets", mode="before")(split_commas)

    @field_validator("stripe_webhook_secrets")
    @classmethod
    def _real_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            if not secret.get_secret_value().startswith("whsec_"):
                raise ValueError("each Stripe webhook secret starts with whsec_")
            check_secret(secret.get_secret_value().removeprefix("whsec_"), "BRINK_STRIPE_WEBHOOK_SECRETS")
        return value

    _real_password = optional_secret("chargebee_webhook_password", "BRINK_CHARGEBEE_WEBHOOK_PASSWORD")

    @model_validator(mode="after")
    def _chargebee_pair(self) -> IntakeSettings:
        if (self.chargebee_webhook_username is None) != (self.chargebee_webhook_password is None):
            raise ValueError(
                "set both BRINK_CHARGEBEE_WEBHOOK_USERNAME and BRINK_CHARGEBEE_WEBHOOK_PASSWORD, or neither"
            )
        return self
