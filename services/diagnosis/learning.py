"""Learning from how cases end: save rates per confirmed root cause and playbook, and the playbook that saves
most among those fit for a root cause. Plain Python."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlaybookRecord:
    """How cases confirmed as ``root_cause`` and worked with ``playbook`` ended (saved or lost; a customer who
    stayed before any touch, or one we moved on from, says nothing about the playbook)."""

    root_cause: str
    playbook: str
    saved: int
    closed: int

    @property
    def save_rate(self) -> float:
        return self.saved / self.closed if self.closed else 0.0

    def says(self) -> str:
        return f"{self.playbook} saved {self.saved} of {self.closed} ({self.save_rate:.0%})"


@dataclass(frozen=True)
class Learned:
    """What the confirmed cases say, and from how many closed cases a save rate counts."""

    records: dict[tuple[str, str], PlaybookRecord] = field(default_factory=dict)
    min_cases: int = 20


@dataclass(frozen=True)
class PlaybookChoice:
    """The playbook recommended for a root cause by the confirmed cases, and why."""

    playbook: str
    reason: str
    save_rate: float
    closed_cases: int
    compared: tuple[PlaybookRecord, ...]


def choose_playbook(
    *, root_cause: str, default: str, fit: tuple[str, ...], learned: Learned, excluded: set[str]
) -> PlaybookChoice | None:
    """Among the playbooks fit for ``root_cause`` (its own first) with enough closed cases, the one that saves
    most; None while the root cause's own playbook has too few closed cases to compare with."""
    candidates = [default, *(name for name in fit if name != default)]
    known = [
        record
        for name in candidates
        if name not in excluded
        and (record := learned.records.get((root_cause, name))) is not None
        and record.closed >= learned.min_cases
    ]
    own = next((record for record in known if record.playbook == default), None)
    if own is None:
        return None
    # Ties keep the root cause's own playbook: it is listed first and max() keeps the first of equals.
    best = max(known, key=lambda record: record.save_rate)
    confirmed = f"cases confirmed as {root_cause}"
    if best is own:
        reason = f"{own.says()} of the {confirmed}; no playbook fit for it saves more"
    else:
        reason = f"{best.says()} of the {confirmed}, where {own.says()}: switched to the one that saves more"
    return PlaybookChoice(
        playbook=best.playbook,
        reason=reason,
        save_rate=round(best.save_rate, 3),
        closed_cases=best.closed,
        compared=tuple(known),
    )
