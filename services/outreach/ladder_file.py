"""The escalation ladders as data: a default YAML file and optionally one per playbook, validated at start."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.outreach.attempts import CONTACT_RESULTS
from services.outreach.playbooks import Action, Role

LADDER_DIR = Path(__file__).parent / "ladders"
DEFAULT = "default"
# What a completed task's contact attempt came to; the answers (attempts.CONTACT_RESULTS) stop the customer
# ladder and can never be configured as no answer.
TaskResult = Literal["reached", "no_answer", "no_response", "voicemail", "declined", "accepted_offer"]
TASK_RESULTS: tuple[str, ...] = get_args(TaskResult)


class LadderError(ValueError):
    """A ladder file is missing, unreadable or invalid; the message names the file and the field."""


class SilenceRung(BaseModel):
    """A rung of the customer-facing ladder: climbed one at a time, each after a contact attempt went unanswered."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z_]+$", max_length=32)
    role: Role
    action: Action
    title: str = Field(min_length=1, max_length=500)
    delay_hours: float = Field(default=24, ge=0, description="after the unanswered attempt, before this rung fires")
    due_after_hours: float = Field(default=8, ge=0, description="the rung's task is due this long after it fires")
    min_mrr_minor: int | Literal["high_value"] | None = Field(
        default=None, description="skipped for accounts below this monthly revenue; high_value: the setting"
    )
    repeats: int = Field(default=0, ge=0, le=10, description="times worked again after no answer, before climbing")

    @property
    def delay(self) -> timedelta:
        return timedelta(hours=self.delay_hours)

    @property
    def due_after(self) -> timedelta:
        return timedelta(hours=self.due_after_hours)

    def threshold(self, high_value_mrr_minor: int) -> int:
        """The monthly revenue (minor units) an account needs for this rung."""
        if self.min_mrr_minor == "high_value":
            return high_value_mrr_minor
        return self.min_mrr_minor or 0


class InactionRung(BaseModel):
    """A rung of our own ladder: a task overdue and not done reminds its owner, then the manager, then moves."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z_]+$", max_length=32)
    action: Literal["remind", "reassign"]
    role: Literal["owner", "manager"] = Field(description="who is told (remind) or who takes the task (reassign)")
    title: str = Field(min_length=1, max_length=500)
    delay_hours: float = Field(default=0, ge=0, description="after the task's due time")

    @property
    def delay(self) -> timedelta:
        return timedelta(hours=self.delay_hours)


class Ladder(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    no_answer_results: tuple[TaskResult, ...] = Field(default=("no_answer", "no_response", "voicemail"), min_length=1)
    silence: tuple[SilenceRung, ...] = Field(min_length=1)
    inaction: tuple[InactionRung, ...] = ()

    @model_validator(mode="after")
    def _names_are_unique(self) -> Ladder:
        for rungs, field in ((self.silence, "silence"), (self.inaction, "inaction")):
            names = [rung.name for rung in rungs]
            if len(set(names)) != len(names):
                raise ValueError(f"{field}: rung names must be unique")
        if CONTACT_RESULTS & set(self.no_answer_results):
            raise ValueError("no_answer_results: reached, declined and accepted_offer are answers")
        return self

    def silence_rung(self, name: str) -> tuple[int, SilenceRung] | None:
        """The rung called ``name`` with its index, if it is on this ladder."""
        return next(((index, rung) for index, rung in enumerate(self.silence) if rung.name == name), None)


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def _one_line(error: OSError | yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        return f"{error.problem} at line {error.problem_mark.line + 1}"
    return " ".join(str(error).split())


def load_ladder(path: Path) -> Ladder:
    """One ladder file; raises LadderError naming the file and the bad field."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise LadderError(f"ladder {path}: cannot be read: {_one_line(error)}") from None
    if not isinstance(data, dict):
        raise LadderError(f"ladder {path}: expected a mapping with 'silence' and 'inaction'")
    try:
        return Ladder.model_validate({**data, "name": path.stem})
    except ValidationError as error:
        raise LadderError(f"ladder {path}: {_describe(error)}") from None


def load_ladders(directory: Path = LADDER_DIR, *, playbooks: set[str] | None = None) -> dict[str, Ladder]:
    """``default.yaml`` and every ``<playbook>.yaml`` in ``directory``, by name; a file for no playbook is refused."""
    default = directory / f"{DEFAULT}.yaml"
    if not default.is_file():
        raise LadderError(f"ladder directory {directory} lacks {DEFAULT}.yaml")
    ladders = {path.stem: load_ladder(path) for path in sorted(directory.glob("*.yaml"))}
    if playbooks is not None:
        for name in ladders:
            if name != DEFAULT and name not in playbooks:
                raise LadderError(f"ladder {directory / (name + '.yaml')}: no playbook is called {name!r}")
    return ladders


def ladder_for(ladders: dict[str, Ladder], playbook: str | None) -> Ladder:
    """The playbook's own ladder when it has one, else the default."""
    return ladders.get(playbook or DEFAULT) or ladders[DEFAULT]
