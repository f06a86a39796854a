"""Intake's request and response bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class WebhookAck(BaseModel):
    outcome: Literal["accepted", "duplicate", "ignored"]
    event_id: str
