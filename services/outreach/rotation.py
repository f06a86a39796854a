"""Round-robin owner rotation per role. Plain Python: the cursor is stored by the caller."""

from __future__ import annotations

from collections.abc import Iterator

ROLES = ("csm", "cs_manager", "vp_customer_success", "executive_sponsor")


def take_turn(people: list[str], cursor: int) -> tuple[str, int]:
    """Whose turn it is at ``cursor``, and the cursor for the next turn."""
    if not people:
        raise ValueError("a rotation needs at least one person")
    return people[cursor % len(people)], (cursor + 1) % len(people)


def take_turns(people: list[str], cursor: int, count: int) -> Iterator[str]:
    """The next ``count`` people from ``cursor`` on, as ``count`` calls of ``take_turn`` would name them."""
    for turn in range(count):
        yield take_turn(people, cursor + turn)[0]
