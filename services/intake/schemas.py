"""Intake's request and response bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared.events import Initiator, Money, PlanLine


class WebhookAck(BaseModel):
    outcome: Literal["accepted", "duplicate", "ignored", "superseded"]
    event_id: str
    reason: str | None = Field(default=None, description="why the event was ignored or superseded")


class CancellationReport(BaseModel):
    """A cancellation reported by an internal tool (an in-app cancel form, a logged call)."""

    model_config = ConfigDict(extra="forbid")
    customer_id: str = Field(min_length=1, max_length=255)
    account_id: str | None = Field(default=None, max_length=255, description="defaults to api:<customer_id>")
    subscription_id: str | None = Field(default=None, max_length=255)
    customer_email: str | None = Field(default=None, max_length=320)
    customer_name: str | None = Field(default=None, max_length=255)
    account_owner: str | None = Field(default=None, max_length=255)
    plans: list[PlanLine] = Field(default_factory=list, max_length=100)
    mrr: Money | None = Field(default=None, description="monthly revenue at risk, in minor units")
    billing_reason: str | None = Field(default=None, max_length=64)
    feedback: str | None = Field(default=None, max_length=64, description="the customer's stated reason code")
    comment: str | None = Field(default=None, max_length=5000, description="the customer's own words")
    initiated_by: Initiator = "customer"
    initiated_by_detail: str | None = Field(default=None, max_length=255, description="who exactly, e.g. the CSM")
    involuntary: bool = False
    scheduled: bool = False
    effective_at: AwareDatetime | None = None
    occurred_at: AwareDatetime | None = Field(
        default=None, description="when it happened; orders reports of one subscription"
    )
    livemode: bool = True


class CancellationAck(BaseModel):
    outcome: Literal["accepted", "superseded"]
    cancellation_id: str
    event_id: str = Field(description="the Idempotency-Key, or a generated id when none was sent")
