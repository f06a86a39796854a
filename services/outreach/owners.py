"""Who owns a case and its tasks.

The case goes to the account owner when billing, the internal API or the signals name one who is an active
person (matched by email). A task for the CSM role goes to the case's owner; a task for another role goes up the
owner's managers to the nearest active one with that role (the CS-manager role: the owner's own manager,
whatever their title). Everything else takes turns among the active people of the role, or, while nobody has
the role, among the names in ``BRINK_ROTATION_<ROLE>``. Before anyone is set up at all, an account owner is
taken as it is given, as before people existed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat

from sqlalchemy.ext.asyncio import AsyncSession

from services.outreach import repository
from services.outreach.models import Person
from services.outreach.rotation import take_turns
from shared.logs import get_logger

log = get_logger("outreach.owners")
# Deep enough for any organisation; a cycle written straight into the table stops here too.
MAX_CHAIN = 12
_TEAM_KEY = "outreach.team"


@dataclass(frozen=True)
class Member:
    id: str
    email: str
    role: str
    manager_id: str | None
    active: bool


@dataclass
class Team:
    """Everyone set up, read once per routing decision (teams are small)."""

    by_id: dict[str, Member] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)  # by email

    def staff(self, owners: set[str | None]) -> dict[str, Person]:
        """The people behind these owners (emails), by email, as ``recipients.staff`` finds them."""
        wanted = {owner.lower() for owner in owners if owner}
        return {email: person for email, person in self.people.items() if email in wanted}

    @property
    def anyone(self) -> bool:
        return bool(self.by_id)

    def person(self, email: str | None) -> Member | None:
        """The active person with this email."""
        wanted = (email or "").strip().lower()
        return next((m for m in self.by_id.values() if m.email == wanted and m.active), None) if wanted else None

    def with_role(self, role: str) -> list[str]:
        """The emails of the role's active people, in the order they take turns."""
        return sorted(m.email for m in self.by_id.values() if m.role == role and m.active)

    def above(self, owner: Member | None, role: str) -> str | None:
        """The nearest active manager above ``owner`` with ``role``; for the CS-manager role, the direct manager."""
        if owner is None:
            return None
        direct = self.by_id.get(owner.manager_id or "")
        current, seen = owner, {owner.id}
        for _ in range(MAX_CHAIN):
            manager = self.by_id.get(current.manager_id or "")
            if manager is None or manager.id in seen:
                break
            if manager.active and manager.role == role:
                return manager.email
            seen.add(manager.id)
            current = manager
        if role == "cs_manager" and direct is not None and direct.active:
            return direct.email
        return None


async def read_team(session: AsyncSession) -> Team:
    everyone = await repository.people_for_routing(session)
    return Team(
        by_id={p.id: Member(p.id, p.email, p.role, p.manager_id, p.active) for p in everyone},
        people={p.email: p for p in everyone},
    )


async def team_of_this_transaction(session: AsyncSession) -> Team:
    """The team as this transaction first read it. A consumer opens a batch of cases in one transaction that
    changes nobody: one read of the people for the batch, where each case read them twice (routing, then the
    owners' hours and channels). Not for a transaction that adds or changes people."""
    team = session.info.get(_TEAM_KEY)
    if team is None:
        team = session.info[_TEAM_KEY] = await read_team(session)
    return team


async def next_in_rotations(session: AsyncSession, *, roles: list[str], rotations: dict[str, list[str]]) -> list[str]:
    """One turn per entry of ``roles`` (in order), all in one statement.

    The cursors are stored rows, so turns survive restarts and instances.
    """
    turns = Counter(roles)
    if not turns:
        return []
    if any(not rotations[role] for role in turns):
        raise ValueError("a rotation needs at least one person")
    # A rotation of one is always that person's turn: its cursor (modulo one) could only ever say 0, so it is left
    # alone. That is every role as configured out of the box, where each case took a statement of its own.
    shared = {role: count for role, count in turns.items() if len(rotations[role]) > 1}
    stored = (
        await repository.advance_rotations(session, turns=shared, sizes={role: len(rotations[role]) for role in shared})
        if shared
        else {}
    )
    people = {
        role: take_turns(rotations[role], stored[role] - count, count) if role in shared else repeat(rotations[role][0])
        for role, count in turns.items()
    }
    return [next(people[role]) for role in roles]


def _rotations(team: Team, configured: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each role's active people, or its configured names while nobody has the role."""
    return {role: team.with_role(role) or names for role, names in configured.items()}


async def owners_for(
    session: AsyncSession,
    *,
    roles: list[str],
    case_owner: str | None,
    rotations: dict[str, list[str]],
    team: Team | None = None,
) -> list[str]:
    """The owner for each role, in order: the CSM role to the case's owner; other roles up the owner's managers,
    else in turn."""
    team = team if team is not None else await read_team(session)
    owner = team.person(case_owner)
    chosen: list[str | None] = [
        case_owner if role == "csm" and case_owner else team.above(owner, role) if role != "csm" else None
        for role in roles
    ]
    taking_turns = [role for role, person in zip(roles, chosen, strict=True) if person is None]
    people = iter(await next_in_rotations(session, roles=taking_turns, rotations=_rotations(team, rotations)))
    return [person if person is not None else next(people) for person in chosen]


async def owners_for_new_case(
    session: AsyncSession, *, team: Team, account_owner: str | None, roles: list[str], rotations: dict[str, list[str]]
) -> tuple[str, list[str]]:
    """The new case's owner and each role's owner, in order."""
    if not team.anyone:
        case_owner = account_owner or None
    else:
        person = team.person(account_owner)
        case_owner = person.email if person else None
        if account_owner and person is None:
            log.warning("outreach.owner.not_a_person", account_owner=account_owner)
    if case_owner is None and team.anyone:
        # The CSM whose turn it is owns the case; its other tasks then go up their managers like any owner's.
        [case_owner] = await next_in_rotations(session, roles=["csm"], rotations=_rotations(team, rotations))
    if case_owner is not None:
        return case_owner, await owners_for(session, roles=roles, case_owner=case_owner, rotations=rotations, team=team)
    # Nobody set up and no account owner: one statement takes the case's CSM turn first, then the other roles'.
    taking_turns = ["csm"] + [role for role in roles if role != "csm"]
    people = iter(await next_in_rotations(session, roles=taking_turns, rotations=_rotations(team, rotations)))
    case_owner = next(people)
    return case_owner, [case_owner if role == "csm" else next(people) for role in roles]
