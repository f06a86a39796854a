"""Outreach's settings."""

from __future__ import annotations

from pydantic import Field, field_validator

from shared.settings import BrinkSettings, CommaList, split_commas


class OutreachSettings(BrinkSettings):
    outreach_port: int = Field(default=8002, ge=1, le=65535)
    # Who gets a task when the diagnosis names no account owner, per role, in turn.
    csm_rotation: CommaList = Field(default_factory=lambda: ["csm-team"])

    _split_rotation = field_validator("csm_rotation", mode="before")(split_commas)
