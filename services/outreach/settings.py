"""Outreach's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from services.outreach.ladder_file import LADDER_DIR
from services.outreach.offer_file import OFFERS_FILE
from services.outreach.playbooks import PLAYBOOK_DIR
from services.outreach.working_hours import WorkingHours, parse_working_hours
from shared.billing.settings import BillingSettings
from shared.settings import CommaList, refuse_placeholders, split_commas


class OutreachSettings(BillingSettings):
    outreach_port: int = Field(default=8002, ge=1, le=65535)
    playbook_dir: Path = PLAYBOOK_DIR
    ladder_dir: Path = LADDER_DIR
    offers_file: Path = Field(default=OFFERS_FILE, description="the save offers, their limits and budget")
    # Due times and ladder delays count these hours in the owner's time zone (the team's for people without one).
    working_hours: str = "09:00-17:00"
    working_days: CommaList = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"], min_length=1)
    holidays: CommaList = Field(default_factory=list, description="YYYY-MM-DD dates nobody works")
    time_zone: str = "UTC"
    # Who gets a task when the diagnosis names no account owner, per role, in turn.
    rotation_csm: CommaList = Field(default_factory=lambda: ["csm-team"], min_length=1)
    rotation_cs_manager: CommaList = Field(default_factory=lambda: ["cs-manager"], min_length=1)
    rotation_vp_customer_success: CommaList = Field(default_factory=lambda: ["vp-customer-success"], min_length=1)
    rotation_executive_sponsor: CommaList = Field(default_factory=lambda: ["executive-sponsor"], min_length=1)
    # Executive outreach and the on-site visit are only worth it from this monthly revenue up (minor units).
    high_value_mrr_minor: int = Field(default=100_000, ge=0)
    # Interventions (other than calls and emails) done for an account this recently are not repeated.
    tried_window_days: int = Field(default=90, ge=0)
    save_verify_days: int = Field(
        default=30, ge=1, le=366, description="a save still standing this long after it is verified"
    )
    scheduler_poll_seconds: float = Field(default=5, gt=0)
    gauge_refresh_seconds: float = Field(
        default=60, gt=0, description="how often the case and overdue-task gauges are recounted"
    )
    high_priority: int = Field(default=70, ge=0, le=100, description="cases from this priority up go to Slack")
    slack_webhook_url: SecretStr | None = None
    outbound_webhook_url: AnyHttpUrl | None = None
    outbound_webhook_secret: SecretStr | None = None
    notify_attempts: int = Field(default=3, ge=1, le=10, description="tries per delivery round, with backoff")
    notify_rounds: int = Field(default=5, ge=1, le=50, description="delivery rounds before a notification fails")
    notify_backoff_seconds: float = Field(default=1, gt=0)
    notify_timeout_seconds: float = Field(default=10, gt=0)
    # Personal notifications: email through an SMTP server, Slack direct messages through a bot token.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: Literal["starttls", "tls", "none"] = "starttls"
    smtp_ca_file: Path | None = Field(default=None, description="trust only this CA bundle (a private mail relay)")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str | None = Field(default=None, description="the From address")
    slack_bot_token: SecretStr | None = None
    slack_api_url: AnyHttpUrl = AnyHttpUrl("https://slack.com/api")
    due_soon_hours: float = Field(default=2, ge=0, description="a task's owner is told this long before it is due")

    _split_rotation = field_validator(
        "rotation_csm",
        "rotation_cs_manager",
        "rotation_vp_customer_success",
        "rotation_executive_sponsor",
        "working_days",
        "holidays",
        mode="before",
    )(split_commas)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(f"time zone {value!r} is not an IANA zone name such as Europe/Paris") from None
        return value

    @field_validator("working_hours")
    @classmethod
    def _hours_parse(cls, value: str) -> str:
        parse_working_hours(value, days=["mon"], holidays=[])
        return value

    @field_validator("working_days")
    @classmethod
    def _days_parse(cls, value: list[str]) -> list[str]:
        parse_working_hours("09:00-17:00", days=value, holidays=[])
        return value

    @field_validator("holidays")
    @classmethod
    def _holidays_parse(cls, value: list[str]) -> list[str]:
        parse_working_hours("09:00-17:00", days=["mon"], holidays=value)
        return value

    def calendar(self) -> WorkingHours:
        """The team's working hours and holidays."""
        return parse_working_hours(self.working_hours, days=self.working_days, holidays=self.holidays)

    @model_validator(mode="after")
    def _email_needs_a_sender(self) -> OutreachSettings:
        if self.smtp_host is not None and not self.smtp_sender:
            raise ValueError("BRINK_SMTP_HOST needs BRINK_SMTP_SENDER, the address emails come from")
        if self.smtp_password is not None:
            refuse_placeholders([self.smtp_password], "BRINK_SMTP_PASSWORD")
        if self.slack_bot_token is not None:
            refuse_placeholders([self.slack_bot_token], "BRINK_SLACK_BOT_TOKEN")
        return self

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
