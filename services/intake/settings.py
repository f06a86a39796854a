"""Intake's settings."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator

from shared.settings import BrinkSettings, SecretList, refuse_placeholders, split_commas


class IntakeSettings(BrinkSettings):
    intake_port: int = Field(default=8000, ge=1, le=65535)
    # Processes serving the intake port together; intake's work is CPU in Python, so one per core it may use.
    intake_processes: int = Field(default=1, ge=1, le=64)
    stripe_webhook_secrets: SecretList = Field(default_factory=list)
    stripe_tolerance_seconds: int = Field(default=300, ge=0)
    chargebee_webhook_username: SecretStr | None = None
    chargebee_webhook_password: SecretStr | None = None
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)

    _split_secrets = field_validator("stripe_webhook_secrets", mode="before")(split_commas)

    @field_validator("stripe_webhook_secrets")
    @classmethod
    def _real_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        refuse_placeholders(value, "BRINK_STRIPE_WEBHOOK_SECRETS")
        for secret in value:
            if not secret.get_secret_value().startswith("whsec_"):
                raise ValueError("each Stripe webhook secret starts with whsec_")
        return value

    @model_validator(mode="after")
    def _chargebee_pair(self) -> IntakeSettings:
        if (self.chargebee_webhook_username is None) != (self.chargebee_webhook_password is None):
            raise ValueError(
                "set both BRINK_CHARGEBEE_WEBHOOK_USERNAME and BRINK_CHARGEBEE_WEBHOOK_PASSWORD, or neither"
            )
        return self
