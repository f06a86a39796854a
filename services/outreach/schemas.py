"""Outreach's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TaskResult = Literal["reached", "no_answer", "declined", "accepted_offer"]
Outcome = Literal["saved", "lost", "moved_on"]


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
    note: str | None = Field(default=None, max_length=5000)
    performed_by: str | None = Field(default=None, max_length=255, description="who did it; the owner if omitted")


class RecordOutcome(BaseModel):
    """An ending recorded by hand."""

    model_config = ConfigDict(extra="forbid")
    outcome: Outcome
    reason: str | None = Field(default=None, max_length=5000)
    recorded_by: str | None = Field(default=None, max_length=255)


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
