"""Learning from how cases end: keep each confirmed case with what diagnosis saw, and the save rates per
confirmed root cause and playbook that recommend playbooks. Never commits: the edge does."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.diagnosis import repository
from services.diagnosis.learning import Learned, PlaybookRecord
from shared.events import CaseClosed
from shared.logs import get_logger

log = get_logger("diagnosis.outcomes")


class SaveRates:
    """The save rates of the confirmed cases, read again at most every ``refresh_seconds`` (a diagnosis on the
    hot path pays one read per interval, not one per message)."""

    def __init__(self, *, min_cases: int, refresh_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.min_cases = min_cases
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._learned: Learned | None = None
        self._read_at = 0.0

    async def learned(self, session: AsyncSession) -> Learned:
        """What the confirmed cases say now (within the refresh interval)."""
        now = self._clock()
        if self._learned is None or now - self._read_at >= self.refresh_seconds:
            records = {
                (row.confirmed_root_cause, row.playbook): PlaybookRecord(
                    root_cause=row.confirmed_root_cause, playbook=row.playbook, saved=int(row.saved), closed=row.closed
                )
                for row in await repository.save_records(session)
            }
            self._learned, self._read_at = Learned(records=records, min_cases=self.min_cases), now
        return self._learned


def _scenario_facts(details: dict[str, Any] | None, history: repository.AccountHistory, closed_at: datetime) -> dict:
    """What diagnosis saw, in the shape of a labelled scenario (see evaluation/), so the rules can be scored on it."""
    details = details or {}
    effective_at = details.get("effective_at")
    days_left = (datetime.fromisoformat(effective_at) - closed_at).total_seconds() / 86400 if effective_at else None
    mrr = details.get("mrr")
    return {
        "source": details.get("source"),
        "billing_reason": details.get("billing_reason"),
        "involuntary": bool(details.get("involuntary")),
        "feedback": details.get("feedback"),
        "comment": details.get("comment"),
        "mrr": mrr["amount_minor"] / 100 if mrr else None,
        "days_left": days_left,
        "stored_signals": history.signals,
        "tried": [[attempt.action, attempt.result] for attempt in history.attempts],
    }


async def record_confirmed_case(session: AsyncSession, closed: CaseClosed) -> bool:
    """Keep a closed case whose root cause was confirmed; False when none was recorded."""
    if closed.confirmed_root_cause is None:
        return False
    history = await repository.account_history(session, closed.account_id)
    details = await repository.cancellation_details(session, closed.cancellation_id)
    await repository.add_confirmed_case(
        session,
        case_id=closed.case_id,
        cancellation_id=closed.cancellation_id,
        account_id=closed.account_id,
        outcome=closed.outcome,
        diagnosed_root_cause=closed.root_cause,
        confirmed_root_cause=closed.confirmed_root_cause,
        playbook=closed.playbook or closed.root_cause,
        facts=_scenario_facts(details, history, closed.closed_at),
        closed_at=closed.closed_at,
    )
    log.info(
        "diagnosis.case.confirmed",
        case_id=closed.case_id,
        diagnosed=closed.root_cause,
        confirmed=closed.confirmed_root_cause,
        outcome=closed.outcome,
    )
    return True
