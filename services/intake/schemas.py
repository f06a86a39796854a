"""Intake's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.events import (
    MAX_PLANS,
    Code,
    Email,
    ExternalId,
    Identifier,
    Initiator,
    LongText,
    Money,
    Name,
    PlanLine,
    Timestamp,
)


class WebhookAck(BaseModel):
    outcome: Literal["accepted", "duplicate", "ignored", "superseded"]
    event_id: str
    reason: str | None = Field(default=None, description="why the event was ignored or superseded")


class CancellationReport(BaseModel):
    """A cancellation reported by an internal tool (an in-app cancel form, a logged call)."""

    model_config = ConfigDict(extra="forbid")
    # The event contract's bounds (shared/events.py): what this accepts, the tables downstream can hold.
    customer_id: ExternalId
    account_id: Identifier | None = Field(default=None, description="defaults to api:<customer_id>")
    subscription_id: ExternalId | None = None
    customer_email: Email | None = None
    customer_name: Name | None = None
    account_owner: Name | None = None
    plans: list[PlanLine] = Field(default_factory=list, max_length=MAX_PLANS)
    mrr: Money | None = Field(default=None, description="monthly revenue at risk, in minor units")
    billing_reason: Code | None = None
    feedback: Code | None = Field(default=None, description="the customer's stated reason code")
    comment: LongText | None = Field(default=None, description="the customer's own words")
    initiated_by: Initiator = "customer"
    initiated_by_detail: Name | None = Field(default=None, description="who exactly, e.g. the CSM")
    involuntary: bool = False
    scheduled: bool = False
    effective_at: Timestamp | None = None
    occurred_at: Timestamp | None = Field(
        default=None, description="when it happened (1970 or later); orders reports of one subscription"
    )
    livemode: bool = True

    @field_validator("occurred_at")
    @classmethod
    def _orderable(cls, value: datetime | None) -> datetime | None:
        # Reports of one subscription are ordered by milliseconds since 1970 (a version that is never negative).
        if value is not None and value.timestamp() < 0:
            raise ValueError("occurred_at must be 1970-01-01 or later")
        return value


class CancellationAck(BaseModel):
    outcome: Literal["accepted", "superseded"]
    cancellation_id: str
    event_id: str = Field(description="the Idempotency-Key, or a generated id when none was sent")
