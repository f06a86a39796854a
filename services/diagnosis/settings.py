"""Diagnosis's settings."""

from __future__ import annotations

from pydantic import Field

from shared.settings import BrinkSettings


class DiagnosisSettings(BrinkSettings):
    diagnosis_port: int = Field(default=8001, ge=1, le=65535)
    context_url: str | None = None
