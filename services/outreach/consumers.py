"""Outreach's message handlers."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import service
from services.outreach.playbooks import Playbook
from shared.events import DiagnosisCompleted, Envelope


async def on_diagnosis_completed(payload: DiagnosisCompleted, *, envelope: Envelope, session: AsyncSession,
                                 playbooks: dict[str, Playbook], default_owner: str) -> None:
    await service.open_or_update_case(session, payload, playbooks=playbooks, default_owner=default_owner)
