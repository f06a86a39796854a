"""Diagnosis's response bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from shared.events import DiagnosisCompleted


class DiagnosisView(BaseModel):
    account_id: str
    version: int
    created_at: datetime
    diagnosis: DiagnosisCompleted
