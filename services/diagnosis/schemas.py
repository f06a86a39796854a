"""Diagnosis's request and response bodies. Signals are strict: an unknown field is an error naming it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.events import Count, DiagnosisCompleted, LongText, Storable, Timestamp

ShortText = Annotated[str, StringConstraints(max_length=200), Storable]

SIGNAL_GROUPS = ("usage", "onboarding", "stakeholders", "support", "billing", "company", "relationship")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignalGroup(Strict):
    """What every group of signals says about itself: when it was true and who said so."""

    observed_at: Timestamp = Field(description="when the source observed these values (with a time zone)")
    source: Annotated[str, StringConstraints(min_length=1, max_length=100), Storable] = Field(
        description="the system or person that reported them"
    )


class UsageSignals(SignalGroup):
    active_users: Count | None = None
    licensed_seats: Count | None = None
    last_activity_at: Timestamp | None = None
    key_feature_adoption: float | None = Field(
        default=None, ge=0, le=1, description="share of active users using the key features, 0-1"
    )
    trend: Literal["growing", "flat", "declining"] | None = None


class OnboardingSignals(SignalGroup):
    completed: bool | None = None
    trained_users: Count | None = None


class StakeholderSignals(SignalGroup):
    buyer: ShortText | None = Field(default=None, description="who signed for it")
    buyer_left: bool | None = Field(default=None, description="the buyer is no longer there (left, or moved on)")
    champion: ShortText | None = Field(default=None, description="null: nobody champions it")
    champion_left: bool | None = None
    implementer: ShortText | None = Field(
        default=None, description="who was tasked with implementing it; null: nobody was"
    )
    implementer_on_board: bool | None = Field(
        default=None, description="whether the person tasked with implementing it was on board with the purchase"
    )
    users_in_evaluation: bool | None = Field(default=None, description="were the daily users part of the evaluation")
    executive_sponsor: ShortText | None = Field(default=None, description="null: no executive sponsor")


class KnownIssue(Strict):
    tag: Annotated[str, StringConstraints(min_length=1, max_length=100), Storable]
    title: Annotated[str, StringConstraints(max_length=500), Storable] | None = None


class SupportSignals(SignalGroup):
    open_tickets: Count | None = None
    known_issues: list[KnownIssue] | None = Field(default=None, max_length=100)


class BillingSignals(SignalGroup):
    failed_payments: Count | None = None
    downgrades: Count | None = None
    discounts_given: list[ShortText] | None = Field(default=None, max_length=100)


class CompanySignals(SignalGroup):
    distress: bool | None = Field(default=None, description="bankruptcy, shutdown or similar")
    budget_freeze: bool | None = None
    icp_fit: int | None = Field(default=None, ge=0, le=100, description="ideal-customer-profile fit score")


class Note(Strict):
    text: Annotated[LongText, StringConstraints(min_length=1)]
    author: ShortText | None = None


class RelationshipSignals(SignalGroup):
    notes: list[Note] = Field(default_factory=list, max_length=100)
    account_owner: str | None = Field(
        default=None,
        max_length=255,
        description="the email of our person who owns the account (from the CRM); a case with no owner from "
        "billing goes to them",
    )


class AccountSignals(Strict):
    """The groups sent replace the stored ones; groups not sent are kept."""

    usage: UsageSignals | None = None
    onboarding: OnboardingSignals | None = None
    stakeholders: StakeholderSignals | None = None
    support: SupportSignals | None = None
    billing: BillingSignals | None = None
    company: CompanySignals | None = None
    relationship: RelationshipSignals | None = None

    @model_validator(mode="after")
    def _at_least_one_group(self) -> AccountSignals:
        if not any(getattr(self, group) is not None for group in SIGNAL_GROUPS):
            raise ValueError(f"send at least one signal group: {', '.join(SIGNAL_GROUPS)}")
        return self

    def groups(self) -> dict[str, SignalGroup]:
        """The groups present in this request."""
        return {name: group for name in SIGNAL_GROUPS if (group := getattr(self, name)) is not None}


class SignalsAccepted(BaseModel):
    account_id: str
    signal_version: int
    groups: list[str] = Field(description="the groups stored")
    stale: list[str] = Field(
        default_factory=list, description="groups not stored: what we hold was observed later than what was sent"
    )
    rediagnosing: bool = Field(description="an open cancellation will be diagnosed again")


class AnswerIn(Strict):
    """One answer to a discovery question, as the person who asked it heard it."""

    question_id: Annotated[str, Storable] = Field(
        min_length=1, max_length=64, description="the `id` of a question in a diagnosis's `unknowns[].asks`"
    )
    value: Annotated[str, Storable] = Field(
        min_length=1, max_length=2000, description="one of the question's `choices`; free text when it has none"
    )
    answered_by: Annotated[str, Storable] = Field(
        min_length=1, max_length=200, description="who recorded it (a CSM's email, a tool)"
    )
    answered_at: Timestamp | None = Field(default=None, description="when it was answered; default now")


class AnswersIn(Strict):
    answers: list[AnswerIn] = Field(min_length=1, max_length=50)


class AnswersAccepted(BaseModel):
    account_id: str
    signal_version: int = Field(description="the account's evidence version these answers are part of")
    recorded: list[str] = Field(description="the question ids whose answers were stored")
    stale: list[str] = Field(
        default_factory=list, description="not stored: the stored answer to that question was given later"
    )
    rediagnosing: bool = Field(description="an open cancellation will be diagnosed again")


class QuestionView(BaseModel):
    id: str
    root_cause: str = Field(description="the hypothesis it settles")
    text: str
    choices: list[str] = Field(description="the answers to choose from; empty: free text")


class DiagnosisView(BaseModel):
    account_id: str
    version: int
    created_at: datetime
    diagnosis: DiagnosisCompleted
