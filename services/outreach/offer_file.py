"""The offers file: the catalogue of save offers, the budget per period and team, the limits per role, validated at
start."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.outreach.offer_rules import DEFAULT_TEAM, OfferKind, OfferRules, OfferTerms, Period, RoleLimit, Team

OFFERS_FILE = Path(__file__).parent / "offers" / "offers.yaml"
LimitRole = Literal["csm", "cs_manager", "vp_customer_success", "executive_sponsor", "admin"]
BillingSource = Literal["stripe", "chargebee"]
PriceId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]


class OfferFileError(ValueError):
    """The offers file is missing, unreadable or invalid; the message names the file and the field."""


class OfferEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: OfferKind
    title: str = Field(min_length=1, max_length=200)
    months: int = Field(default=0, ge=0, le=36)
    percent_off: int = Field(default=0, ge=0, le=100)
    days: int = Field(default=0, ge=0, le=730)
    # cheaper_plan: the plan moved to, per billing system (a Stripe price or plan id, a Chargebee item price id)
    prices: dict[BillingSource, PriceId] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _figures_fit_the_kind(self) -> OfferEntry:
        needed = {
            "discount": ("months", "percent_off"),
            "pause": ("months",),
            "free_time": ("days",),
            "cheaper_plan": ("months", "prices"),
        }.get(self.kind, ())
        for name in ("months", "percent_off", "days", "prices"):
            value = getattr(self, name)
            if name in needed and not value:
                raise ValueError(
                    f"{name}: a {self.kind} offer needs "
                    + ("the plan's id at stripe or chargebee" if name == "prices" else "it above 0")
                )
            if name not in needed and value:
                raise ValueError(f"{name}: a {self.kind} offer takes no {name}")
        return self

    def terms(self, name: str) -> OfferTerms:
        figures = self.model_dump(exclude={"prices"})
        return OfferTerms(name=name, prices=tuple(sorted(self.prices.items())), **figures)


class LimitEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_minor: int | None = Field(default=None, ge=0, le=10**12)
    max_share_of_yearly_revenue: Decimal | None = Field(default=None, ge=0, le=1)
    may_exceed_budget: bool = False


class TeamEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    lead: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)
    budget_minor: int = Field(ge=0, le=10**13)


class OfferFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    currency: str = Field(pattern=r"^[a-z]{3}$")
    period: Period
    budget_minor: int = Field(ge=0, le=10**13)
    max_per_account_per_year: int = Field(ge=1, le=100)
    limits: dict[LimitRole, LimitEntry] = Field(min_length=1)
    offers: dict[str, OfferEntry] = Field(min_length=1)
    teams: dict[str, TeamEntry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names(self) -> OfferFile:
        for section, names in (("offers", self.offers), ("teams", self.teams)):
            for name in names:
                if not _is_name(name):
                    raise ValueError(f"{section}.{name}: a name is 1 to 64 lower-case letters, digits and underscores")
        if DEFAULT_TEAM in self.teams:
            raise ValueError(f"teams.{DEFAULT_TEAM}: the default team's budget is budget_minor")
        leads: dict[str, str] = {}
        for name, team in self.teams.items():
            lead = team.lead.lower()
            if lead in leads:
                raise ValueError(f"teams.{name}.lead: {lead} already leads team {leads[lead]}")
            leads[lead] = name
        return self

    def rules(self) -> OfferRules:
        return OfferRules(
            currency=self.currency,
            period=self.period,
            budget_minor=self.budget_minor,
            max_per_account_per_year=self.max_per_account_per_year,
            limits={role: RoleLimit(**entry.model_dump()) for role, entry in self.limits.items()},
            offers={name: entry.terms(name) for name, entry in self.offers.items()},
            teams={
                name: Team(name=name, lead=entry.lead.lower(), budget_minor=entry.budget_minor)
                for name, entry in self.teams.items()
            },
        )


def _is_name(name: str) -> bool:
    return 0 < len(name) <= 64 and name.replace("_", "").isalnum() and name == name.lower()


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    return f"{where}: {first['msg'].removeprefix('Value error, ')}"


def load_offer_rules(path: Path = OFFERS_FILE) -> OfferRules:
    """The offers file's rules; raises OfferFileError naming the file and the bad field."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        detail = " ".join(str(error).split())
        if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
            detail = f"{error.problem} at line {error.problem_mark.line + 1}"
        raise OfferFileError(f"offers file {path}: cannot be read: {detail}") from None
    if not isinstance(data, dict):
        raise OfferFileError(
            f"offers file {path}: expected a mapping with currency, period, budget_minor, limits, offers"
        )
    try:
        return OfferFile.model_validate(data).rules()
    except ValidationError as error:
        raise OfferFileError(f"offers file {path}: {_describe(error)}") from None
