"""Round-robin owner rotation per role. Plain Python: the cursor is stored by the caller."""

from __future__ import annotations

ROLES = ("csm", "cs_manager", "vp_customer_success", "executive_sponsor")


def take_turn(people: list[str], cursor: int) -> tuple[str, int]:
    """Whose turn it is at ``cursor``, and the cursor for the next turn."""
    if not people:
        raise ValueError("a rotation needs at least one person")
    return people[cursor % len(people)], (cursor + 1) % len(people)
