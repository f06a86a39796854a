"""Who owns a task: the account owner when known, else the next person in the role's stored rotation."""

from __future__ import annotations

from collections import Counter

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.rotation import take_turns


async def next_in_rotations(session: AsyncSession, *, roles: list[str], rotations: dict[str, list[str]]) -> list[str]:
    """One turn per entry of ``roles`` (in order), all in one statement.

    The cursors are stored rows, so turns survive restarts and instances.
    """
    turns = Counter(roles)
    if not turns:
        return []
    if any(not rotations[role] for role in turns):
        raise ValueError("a rotation needs at least one person")
    stored = await repository.advance_rotations(
        session, turns=dict(turns), sizes={role: len(rotations[role]) for role in turns}
    )
    people = {role: take_turns(rotations[role], stored[role] - count, count) for role, count in turns.items()}
    return [next(people[role]) for role in roles]


async def owners_for(
    session: AsyncSession, *, roles: list[str], case_owner: str | None, rotations: dict[str, list[str]]
) -> list[str]:
    """The owner for each role, in order: the CSM role goes to the case's owner; other roles (and owner-less
    cases) take turns."""
    taking_turns = [role for role in roles if not (role == "csm" and case_owner)]
    people = iter(await next_in_rotations(session, roles=taking_turns, rotations=rotations))
    return [case_owner if role == "csm" and case_owner else next(people) for role in roles]


async def owners_for_new_case(
    session: AsyncSession, *, account_owner: str | None, roles: list[str], rotations: dict[str, list[str]]
) -> tuple[str, list[str]]:
    """The new case's owner (the account owner, else the CSM rotation's next) and each role's owner, in order."""
    if account_owner:
        return account_owner, await owners_for(session, roles=roles, case_owner=account_owner, rotations=rotations)
    # The CSM turn for the case comes first; the case's CSM steps then go to its (non-empty) owner.
    taking_turns = ["csm"] + [role for role in roles if role != "csm"]
    people = iter(await next_in_rotations(session, roles=taking_turns, rotations=rotations))
    owner = next(people)
    return owner, [owner if role == "csm" else next(people) for role in roles]
