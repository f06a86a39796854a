"""Outreach's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.events import ConfirmedRootCause, LongText, Name, Outcome

TaskResult = Literal["reached", "no_answer", "declined", "accepted_offer"]


class TaskView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    case_id: str
    position: int
    kind: str
    action: str
    offer: str | None
    title: str
    playbook: str | None
    rung: str | None
    owner_role: str
    owner: str | None
    status: str
    due_at: datetime
    escalate_after_seconds: int | None
    result: str | None
    note: str | None
    completed_by: str | None
    completed_at: datetime | None


class CaseEventView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: datetime
    kind: str
    actor: str | None
    detail: dict[str, Any]


class CaseView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    cancellation_id: str
    account_id: str
    customer_name: str | None
    status: str
    symptom: str
    root_cause: str
    decision: str
    priority: int
    mrr_minor: int | None
    currency: str | None
    effective_at: datetime | None
    owner: str | None
    playbook: str | None
    escalation_level: int
    sequence_exhausted: bool
    diagnosis_version: int
    opened_at: datetime
    first_touched_at: datetime | None
    closed_at: datetime | None
    closed_reason: str | None
    initiated_by: str | None = Field(description="customer, billing_system, staff or unknown")
    confirmed_root_cause: str | None = Field(description="recorded by the person who closed the case")
    save_status: str | None = Field(description="saved cases: pending, verified or reverted")
    save_verify_by: datetime | None = Field(description="a pending save still standing then is verified")
    previous_case_id: str | None = Field(description="the same subscription's case before this one")
    state_version: int = Field(description="billing version of the newest cancellation on this case")
    tasks: list[TaskView]


class CaseDetail(CaseView):
    diagnosis: dict[str, Any]
    events: list[CaseEventView]


class CaseList(BaseModel):
    items: list[CaseView]
    limit: int
    offset: int


class TaskList(BaseModel):
    items: list[TaskView]
    limit: int
    offset: int


class CompleteTask(BaseModel):
    """What happened when the task was done."""

    model_config = ConfigDict(extra="forbid")
    result: TaskResult
    note: LongText | None = None
    performed_by: Name | None = Field(default=None, description="who did it; the owner if omitted")


class RecordOutcome(BaseModel):
    """An ending recorded by hand, with what the person found the root cause to be."""

    model_config = ConfigDict(extra="forbid")
    outcome: Outcome = Field(
        description="saved (needs a task that reached the customer), stayed_unprompted (no task reached them), "
        "lost or moved_on"
    )
    confirmed_root_cause: ConfirmedRootCause = Field(
        description="the root cause as found after talking to the customer: one of the ten, or unknown"
    )
    reason: LongText | None = None
    recorded_by: Name | None = None


class MoneyByCurrency(BaseModel):
    saved: dict[str, int] = Field(description="minor units by currency")
    lost: dict[str, int] = Field(description="minor units by currency")


class Tally(BaseModel):
    cases: int
    open: int
    saved: int
    lost: int
    moved_on: int
    save_rate: float | None = Field(description="saved / closed (saved, lost or moved on); null before any ending")
    revenue: MoneyByCurrency


class RootCauseTally(Tally):
    root_cause: str


class WeekTally(Tally):
    week: str = Field(description="ISO week the cases were opened, e.g. 2026-W48")


class FirstTouch(BaseModel):
    touched: int = Field(description="cases with at least one completed task")
    median_hours: float | None
    mean_hours: float | None


class ReportSummary(BaseModel):
    since: datetime | None
    until: datetime | None
    total: Tally
    by_root_cause: list[RootCauseTally]
    by_week: list[WeekTally]
    time_to_first_touch: FirstTouch
