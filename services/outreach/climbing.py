"""When each escalation ladder moves, decided in plain Python with the time given by the caller.

Two ladders, kept apart: the customer's silence (a contact attempt went unanswered: climb one rung of the
customer-facing ladder) and our own inaction (a task is overdue and not done: remind, tell the manager,
reassign; the customer ladder never moves for it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from services.outreach.ladder import REPEATABLE_ACTIONS
from services.outreach.ladder_file import InactionRung, Ladder, SilenceRung
from services.outreach.working_hours import Hours


@dataclass(frozen=True)
class TaskState:
    """What the ladders need to know about a task."""

    id: str
    status: str  # open, done or cancelled
    due_at: datetime
    snoozed_until: datetime | None = None
    rung: str | None = None

    def effective_due(self) -> datetime:
        """The due time, moved later by a snooze: a snoozed task waits."""
        if self.snoozed_until is not None and self.snoozed_until > self.due_at:
            return self.snoozed_until
        return self.due_at

    def holds_the_ladder(self, now: datetime) -> bool:
        """Open, and neither overdue nor past its snooze yet: the next rung must wait for it."""
        return self.status == "open" and self.effective_due() > now


@dataclass(frozen=True)
class Climb:
    """The next step on the customer ladder: a rung (the same one again when it repeats) and what was skipped."""

    rung: SilenceRung | None
    index: int
    repeat: bool
    skipped: tuple[tuple[str, str], ...] = ()


def is_unanswered(ladder: Ladder, result: str) -> bool:
    """Whether a contact result means the customer did not answer (and so climbs the customer ladder)."""
    return result in ladder.no_answer_results


def next_silence_rung(
    ladder: Ladder,
    *,
    current: str | None,
    times_worked: int,
    mrr_minor: int | None,
    high_value_mrr_minor: int,
    tried: frozenset[str] | set[str] = frozenset(),
) -> Climb:
    """The rung the next unanswered attempt leads to.

    ``current`` is the rung reached so far (None: still on the playbook), worked ``times_worked`` times; it is
    worked again while it has repeats left. Rungs above it are skipped when the account's revenue is below their
    threshold, or when their action was tried recently for the account and is not a cheap, repeatable touch.
    """
    start = 0
    if current is not None:
        found = ladder.silence_rung(current)
        if found is None:  # the ladder file changed under a running case: go on from the top of the new one
            return Climb(rung=None, index=len(ladder.silence), repeat=False)
        index, rung = found
        if times_worked <= rung.repeats:
            return Climb(rung=rung, index=index, repeat=True)
        start = index + 1
    skipped: list[tuple[str, str]] = []
    for index in range(start, len(ladder.silence)):
        rung = ladder.silence[index]
        if (mrr_minor or 0) < rung.threshold(high_value_mrr_minor):
            skipped.append((rung.name, "below_revenue_threshold"))
            continue
        if rung.action not in REPEATABLE_ACTIONS and rung.action in tried:
            skipped.append((rung.name, "tried_recently"))
            continue
        return Climb(rung=rung, index=index, repeat=False, skipped=tuple(skipped))
    return Climb(rung=None, index=len(ladder.silence), repeat=False, skipped=tuple(skipped))


def climb_fires_at(rung: SilenceRung, *, unanswered_at: datetime, hours: Hours, zone: ZoneInfo) -> datetime:
    """When a rung fires: its delay after the unanswered attempt, counted in ``hours`` in the owner's ``zone``."""
    return hours.add(unanswered_at, rung.delay, zone=zone)


def climb_may_fire(*, now: datetime, open_rung_tasks: list[TaskState]) -> datetime | None:
    """One rung at a time: None when the climb may fire now, else when to look again.

    A rung never fires while the previous rung's task is open and not yet overdue (or snoozed past now).
    """
    holding = [task.effective_due() for task in open_rung_tasks if task.holds_the_ladder(now)]
    return max(holding) if holding else None


@dataclass(frozen=True)
class Nudge:
    """What our inaction calls for now: the rung to apply, or a later time to look again, or nothing."""

    rung: InactionRung | None = None
    look_again_at: datetime | None = None


def inaction_step(ladder: Ladder, *, task: TaskState, step: int, now: datetime, hours: Hours, zone: ZoneInfo) -> Nudge:
    """Rung ``step`` of the inaction ladder for ``task``, if it is due: its delay counts from the task's due time
    (or the end of its snooze), in ``hours`` in the owner's ``zone``. A done or cancelled task calls for nothing.
    """
    if task.status != "open" or step >= len(ladder.inaction):
        return Nudge()
    rung = ladder.inaction[step]
    fires_at = hours.add(task.effective_due(), rung.delay, zone=zone)
    if fires_at > now:
        return Nudge(look_again_at=fires_at)
    return Nudge(rung=rung)
