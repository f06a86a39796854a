"""Diagnosis's settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr

from services.diagnosis.rules import DEFAULT_RULES
from shared.settings import BrinkSettings, optional_secret


class DiagnosisSettings(BrinkSettings):
    diagnosis_port: int = Field(default=8001, ge=1, le=65535)
    # Where to fetch more context about an account (GET <url>/accounts/{account_id}); optional.
    context_url: str | None = Field(default=None, pattern=r"^https?://")
    # Sent as "Authorization: Bearer <token>" to the context source; put no credentials in BRINK_CONTEXT_URL.
    context_token: SecretStr | None = None
    context_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    context_attempts: int = Field(default=3, ge=1, le=10)
    # The rules diagnosis applies; read and checked at start, so a broken file stops the service.
    rules_file: Path = DEFAULT_RULES
    _real_context_token = optional_secret("context_token", "BRINK_CONTEXT_TOKEN")
    # Learning from outcomes: a (root cause, playbook) save rate counts once this many confirmed cases closed.
    learning_min_cases: int = Field(default=20, ge=1, le=100_000)
    # How often the save rates are read again from the confirmed cases (0: for every diagnosis).
    learning_refresh_seconds: float = Field(default=60, ge=0, le=86_400)
