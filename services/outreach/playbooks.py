"""Playbooks: the ordered steps worked for a root cause, read and validated from YAML data files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from services.outreach.rotation import ROLES
from shared.moves import MOVES

PLAYBOOK_DIR = Path(__file__).parent / "playbooks"
ROOT_CAUSES = (
    "poor_implementation",
    "stakeholders_not_bought_in",
    "rocky_onboarding",
    "executive_mandate",
    "known_issue",
    "champion_left",
    "payment_failure",
    "wrong_fit",
    "company_distress",
    "not_icp",
)
REQUIRED = ("discover", "move_on")

Action = Literal[
    "call", "email", "training_session", "implementation_help", "executive_outreach", "onsite_visit", "offer", "closing"
]
Offer = Literal["free_trial_extension", "free_support_services", "discount", "plan_change", "payment_update"]
Role = Literal["csm", "cs_manager", "vp_customer_success", "executive_sponsor"]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]


class PlaybookError(ValueError):
    """A playbook file is missing, unreadable or invalid; the message names the file and the field."""


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Action
    move: str = Field(description="what the step does, in the vocabulary diagnosis's rules speak (shared/moves.py)")
    title: str = Field(min_length=1)
    owner_role: Role = "csm"
    offer: Offer | None = None
    due_after_hours: float = Field(default=24, ge=0)

    @field_validator("move")
    @classmethod
    def _known_move(cls, move: str) -> str:
        if move not in MOVES:
            raise ValueError(f"{move!r} is not a move (shared/moves.py lists them)")
        return move

    @model_validator(mode="after")
    def _offer_names_what(self) -> Step:
        if (self.action == "offer") != (self.offer is not None):
            raise ValueError("an 'offer' step needs 'offer: <what>', and only offer steps may have one")
        return self

    @property
    def due_after(self) -> timedelta:
        return timedelta(hours=self.due_after_hours)


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z_]+$")
    description: str | None = None
    escalates: bool = Field(default=True, description="false: unanswered steps never climb the customer ladder")
    hours: Literal["working", "calendar"] = Field(
        default="working", description="calendar: due times and ladder delays count nights and weekends too"
    )
    steps: tuple[Step, ...] = Field(min_length=1)

    def move_of(self, *, action: str, offer: str | None, title: str) -> str | None:
        """The move of the step a task was made from: by its action and offer, the title deciding between two."""
        matching = [step for step in self.steps if step.action == action and step.offer == offer]
        titled = [step for step in matching if step.title == title]
        chosen = titled or matching
        return chosen[0].move if chosen else None


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def load_playbook(path: Path) -> Playbook:
    """One playbook file; raises PlaybookError naming the file and the bad field."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise PlaybookError(f"playbook {path}: cannot be read: {error}") from None
    if not isinstance(data, dict):
        raise PlaybookError(f"playbook {path}: expected a mapping with 'name' and 'steps'")
    data.setdefault("name", path.stem)
    try:
        playbook = Playbook.model_validate(data)
    except ValidationError as error:
        raise PlaybookError(f"playbook {path}: {_describe(error)}") from None
    if playbook.name != path.stem:
        raise PlaybookError(f"playbook {path}: name {playbook.name!r} differs from the file name {path.stem!r}")
    return playbook


def load_playbooks(directory: Path = PLAYBOOK_DIR) -> dict[str, Playbook]:
    """Every ``*.yaml`` playbook in ``directory`` by name; ``discover`` and ``move_on`` must be there."""
    if not directory.is_dir():
        raise PlaybookError(f"playbook directory {directory} does not exist")
    playbooks = {path.stem: load_playbook(path) for path in sorted(directory.glob("*.yaml"))}
    missing = [name for name in REQUIRED if name not in playbooks]
    if missing:
        raise PlaybookError(f"playbook directory {directory} lacks {', '.join(m + '.yaml' for m in missing)}")
    return playbooks


def choose(playbooks: dict[str, Playbook], *, decision: str, recommended: str, root_cause: str) -> Playbook:
    """The playbook for a verdict: move_on and discover have their own; else the root cause's, else discover."""
    if decision in ("move_on", "discover"):
        return playbooks[decision]
    return playbooks.get(recommended) or playbooks.get(root_cause) or playbooks["discover"]
