"""Outreach's response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class TaskView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    case_id: str
    position: int
    action: str
    title: str
    owner_role: str
    owner: str | None
    status: str
    due_at: datetime
    result: str | None
    note: str | None
    completed_at: datetime | None


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
    diagnosis_version: int
    opened_at: datetime
    closed_at: datetime | None
    tasks: list[TaskView]


class CaseDetail(CaseView):
    diagnosis: dict[str, Any]


class CaseList(BaseModel):
    items: list[CaseView]
    limit: int
    offset: int
