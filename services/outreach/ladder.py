"""What counts as tried before for an account: interventions by name, and which ones are worth repeating."""

from __future__ import annotations

# Cheap, repeatable touches; everything else is not repeated while it was tried recently.
REPEATABLE_ACTIONS = frozenset({"call", "email"})


def intervention_key(action: str, offer: str | None = None) -> str:
    """How an intervention is named in the tried-recently set (offers by what they offer)."""
    return f"offer:{offer}" if action == "offer" and offer else action


def was_tried(key: str, tried: set[str]) -> bool:
    """Whether an intervention must be skipped because it was tried recently for the account."""
    return key not in REPEATABLE_ACTIONS and key in tried
