"""Outreach's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from services.outreach.playbooks import PLAYBOOK_DIR
from shared.settings import BrinkSettings, CommaList, refuse_placeholders, split_commas


class OutreachSettings(BrinkSettings):
    outreach_port: int = Field(default=8002, ge=1, le=65535)
    playbook_dir: Path = PLAYBOOK_DIR
    # Who gets a task when the diagnosis names no account owner, per role, in turn.
    rotation_csm: CommaList = Field(default_factory=lambda: ["csm-team"], min_length=1)
    rotation_cs_manager: CommaList = Field(default_factory=lambda: ["cs-manager"], min_length=1)
    rotation_vp_customer_success: CommaList = Field(default_factory=lambda: ["vp-customer-success"], min_length=1)
    rotation_executive_sponsor: CommaList = Field(default_factory=lambda: ["executive-sponsor"], min_length=1)
    # Executive outreach and the on-site visit are only worth it from this monthly revenue up (minor units).
    high_value_mrr_minor: int = Field(default=100_000, ge=0)
    # An escalation task left unanswered this long climbs the next rung.
    escalation_after_hours: float = Field(default=48, gt=0)
    # Interventions (other than calls and emails) done for an account this recently are not repeated.
    tried_window_days: int = Field(default=90, ge=0)
    scheduler_poll_seconds: float = Field(default=5, gt=0)
    high_priority: int = Field(default=70, ge=0, le=100, description="cases from this priority up go to Slack")
    slack_webhook_url: SecretStr | None = None
    outbound_webhook_url: AnyHttpUrl | None = None
    outbound_webhook_secret: SecretStr | None = None
    notify_attempts: int = Field(default=3, ge=1, le=10, description="tries per delivery round, with backoff")
    notify_rounds: int = Field(default=5, ge=1, le=50, description="delivery rounds before a notification fails")
    notify_backoff_seconds: float = Field(default=1, gt=0)
    notify_timeout_seconds: float = Field(default=10, gt=0)

    _split_rotation = field_validator(
        "rotation_csm",
        "rotation_cs_manager",
        "rotation_vp_customer_success",
        "rotation_executive_sponsor",
        mode="before",
    )(split_commas)

    @model_validator(mode="after")
    def _webhook_needs_a_secret(self) -> OutreachSettings:
        if self.outbound_webhook_url is not None:
            if self.outbound_webhook_secret is None:
                raise ValueError("BRINK_OUTBOUND_WEBHOOK_URL needs BRINK_OUTBOUND_WEBHOOK_SECRET to sign with")
            refuse_placeholders([self.outbound_webhook_secret], "BRINK_OUTBOUND_WEBHOOK_SECRET")
        return self

    def rotation(self, role: str) -> list[str]:
        """The people who take turns for a role."""
        return list(getattr(self, f"rotation_{role}"))
