"""Outreach's use cases: open a case from a diagnosis, with the tasks of its playbook."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from services.outreach.models import Case, Task
from services.outreach.playbooks import Playbook
from shared.db import utcnow
from shared.events import DiagnosisCompleted


async def open_or_update_case(session: AsyncSession, diagnosis: DiagnosisCompleted, *,
                              playbooks: dict[str, Playbook], default_owner: str) -> Case:
    """One case per cancellation; a newer diagnosis version updates it, an older one changes nothing."""
    case = (
        await session.execute(select(Case).where(Case.cancellation_id == diagnosis.cancellation_id))
    ).scalar_one_or_none()
    now = utcnow()
    if case is not None:
        if diagnosis.diagnosis_version > case.diagnosis_version:
            case.symptom = diagnosis.symptom
            case.root_cause = diagnosis.root_cause
            case.decision = diagnosis.verdict.decision
            case.priority = diagnosis.verdict.priority
            case.diagnosis_version = diagnosis.diagnosis_version
            case.diagnosis = diagnosis.model_dump(mode="json")
            case.updated_at = now
        return case
    case = Case(
        id=str(uuid.uuid4()),
        cancellation_id=diagnosis.cancellation_id,
        account_id=diagnosis.account_id,
        customer_name=diagnosis.customer_name,
        status="open",
        symptom=diagnosis.symptom,
        root_cause=diagnosis.root_cause,
        decision=diagnosis.verdict.decision,
        priority=diagnosis.verdict.priority,
        mrr_minor=diagnosis.mrr.amount_minor if diagnosis.mrr else None,
        currency=diagnosis.mrr.currency if diagnosis.mrr else None,
        effective_at=diagnosis.effective_at,
        owner=diagnosis.account_owner or default_owner,
        diagnosis_version=diagnosis.diagnosis_version,
        diagnosis=diagnosis.model_dump(mode="json"),
        opened_at=now,
        updated_at=now,
        closed_at=None,
    )
    session.add(case)
    playbook = playbooks.get(diagnosis.recommended_playbook) or playbooks["default"]
    for position, step in enumerate(playbook.steps):
        session.add(Task(
            id=str(uuid.uuid4()), case_id=case.id, position=position, action=step.action, title=step.title,
            owner_role=step.owner_role, owner=case.owner, status="open", due_at=now + step.due_after,
            result=None, note=None, created_at=now, completed_at=None,
        ))
    await session.flush()
    return case


async def list_cases(session: AsyncSession, *, status: str | None, limit: int, offset: int) -> list[Case]:
    query = select(Case).options(selectinload(Case.tasks)).order_by(Case.opened_at.desc(), Case.id)
    if status:
        query = query.where(Case.status == status)
    return list((await session.execute(query.limit(limit).offset(offset))).scalars())


async def get_case(session: AsyncSession, case_id: str) -> Case | None:
    return (
        await session.execute(select(Case).options(selectinload(Case.tasks)).where(Case.id == case_id))
    ).scalar_one_or_none()
