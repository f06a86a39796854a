"""Outreach's request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from services.outreach.ladder_file import TaskResult
from shared.events import ConfirmedRootCause, LongText, Name, Outcome, Storable


class TaskView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    case_id: str
    position: int
    kind: str
    action: str
    offer: str | None
    title: str
    playbook: str | None
    rung: str | None
    owner_role: str
    owner: str | None
    status: str
    due_at: datetime
    snoozed_until: datetime | None = None
    result: str | None
    note: str | None
    completed_by: str | None
    completed_at: datetime | None
    snooze_reason: str | None = None


class CaseEventView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: datetime
    kind: str
    actor: str | None
    detail: dict[str, Any]


class CaseView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    cancellation_id: str
    account_id: str
    customer_name: str | None
    status: str
    symptom: str
    root_cause: str
    decision: str
    priority: int
    mrr_minor: int | None
    currency: str | None
    effective_at: datetime | None
    owner: str | None
    playbook: str | None
    escalation_level: int
    sequence_exhausted: bool
    diagnosis_version: int
    opened_at: datetime
    first_touched_at: datetime | None
    closed_at: datetime | None
    closed_reason: str | None
    initiated_by: str | None = Field(description="customer, billing_system, staff or unknown")
    confirmed_root_cause: str | None = Field(description="recorded by the person who closed the case")
    save_status: str | None = Field(description="saved cases: pending, verified or reverted")
    save_verify_by: datetime | None = Field(description="a pending save still standing then is verified")
    previous_case_id: str | None = Field(description="the same subscription's case before this one")
    state_version: int = Field(description="billing version of the newest cancellation on this case")
    tied: bool = Field(
        description="open, and its newest cancellation ties with a withdrawal on billing version (which came last is "
        "unknown): close it by hand after checking the subscription, or wait for the subscription's next event"
    )
    tasks: list[TaskView]


class CaseDetail(CaseView):
    diagnosis: dict[str, Any]
    events: list[CaseEventView]


class CaseList(BaseModel):
    items: list[CaseView]
    limit: int
    offset: int


class TaskList(BaseModel):
    items: list[TaskView]
    limit: int
    offset: int


class CompleteTask(BaseModel):
    """What happened when the task was done."""

    model_config = ConfigDict(extra="forbid")
    result: TaskResult
    note: LongText | None = None
    performed_by: Name | None = Field(default=None, description="who did it; the owner if omitted")


class RecordOutcome(BaseModel):
    """An ending recorded by hand, with what the person found the root cause to be."""

    model_config = ConfigDict(extra="forbid")
    outcome: Outcome = Field(
        description="saved (needs a task that reached the customer), stayed_unprompted (no task reached them), "
        "lost or moved_on"
    )
    confirmed_root_cause: ConfirmedRootCause = Field(
        description="the root cause as found after talking to the customer: one of the ten, or unknown"
    )
    reason: LongText | None = None
    recorded_by: Name | None = None


class MoneyByCurrency(BaseModel):
    """Monthly revenue in minor units, by currency (never summed across currencies)."""

    saved: dict[str, int] = Field(description="saves verified or pending; reverted saves are not revenue saved")
    saved_verified: dict[str, int] = Field(description="saves that stood the verification window")
    saved_pending: dict[str, int] = Field(description="saves still inside the verification window")
    lost: dict[str, int] = Field(description="lost and moved on")


class FirstTouch(BaseModel):
    touched: int = Field(description="cases with at least one completed task")
    median_hours: float | None = Field(description="hours from opening to the first completed task")
    mean_hours: float | None


class RootCauseMatch(BaseModel):
    confirmed: int = Field(description="closed cases whose confirmed root cause is one of the ten (not unknown)")
    matched: int = Field(description="of those, how many the diagnosis had right")
    rate: float | None = Field(description="matched / confirmed; null before any confirmation")


class Tally(BaseModel):
    cases: int
    open: int
    saved: int
    stayed_unprompted: int = Field(description="stayed before any touch: shown apart, never a save")
    lost: int
    moved_on: int
    reverted: int = Field(description="saves a new cancellation reverted inside the verification window")
    save_rate: float | None = Field(description="saved / (saved + lost + moved_on); null before any such ending")
    revenue: MoneyByCurrency
    first_touch: FirstTouch
    root_cause_match: RootCauseMatch


class GroupTally(Tally):
    value: str = Field(description="the group: a symptom, root cause, playbook, owner, initiator or ISO week")


REPORT_CUTS = ("symptom", "root_cause", "confirmed_root_cause", "playbook", "owner", "initiated_by", "week")


class OfferResult(BaseModel):
    kind: str = Field(description="the offer type: keep_subscription, discount, free_time, pause, ...")
    currency: str
    applied: int = Field(description="offers of this type applied on the report's cases")
    still_there: int = Field(description="of them, customers still there after the save's verification window")
    pending: int = Field(description="of them, on cases still open or saves not yet verified")
    not_kept: int = Field(description="of them, on cases lost, moved on, or saved and then reverted")
    cost_minor: int = Field(description="what the applied offers cost")
    mrr_kept_minor: int = Field(description="the monthly revenue of the customers still there")
    months_to_recover_cost: float | None = Field(
        description="cost / monthly revenue kept: the months of kept revenue that pay for the offers; null: none kept"
    )


class ReportSummary(BaseModel):
    since: datetime | None
    until: datetime | None
    total: Tally
    by_symptom: list[GroupTally] = Field(description="by what the customer said")
    by_root_cause: list[GroupTally] = Field(description="by the diagnosed root cause")
    by_confirmed_root_cause: list[GroupTally] = Field(description="by the confirmed root cause (not_recorded: none)")
    by_playbook: list[GroupTally]
    by_owner: list[GroupTally] = Field(description="by the case's owner (unassigned: none)")
    by_initiated_by: list[GroupTally] = Field(description="customer, billing_system, staff or unknown")
    by_week: list[GroupTally] = Field(description="by ISO week of opening, e.g. 2026-W48")
    offers: list[OfferResult] = Field(default_factory=list, description="save offers applied, per type and currency")


class NotificationChoice(BaseModel):
    """How a person wants to be told: their personal channels (none: only the desk) and the daily digest."""

    model_config = ConfigDict(extra="forbid")
    channels: list[Literal["email", "slack_dm"]] = Field(max_length=2)
    daily_digest: bool = True


class Reassign(BaseModel):
    """Give a task, or a whole case, to a person."""

    model_config = ConfigDict(extra="forbid")
    to: str = Field(min_length=1, max_length=320, description="the person's email")
    by: Name | None = Field(default=None, description="who did it (recorded in the case's history)")


class Snooze(BaseModel):
    """Put a task off; its escalation and reminders wait as long."""

    model_config = ConfigDict(extra="forbid")
    until: AwareDatetime = Field(description="when the task is due again (with a time zone)")
    reason: str = Field(min_length=1, max_length=1000)
    by: Name | None = None


class AddNote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: LongText = Field(min_length=1)
    by: Name | None = None


class SwitchPlaybook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    playbook: str = Field(min_length=1, max_length=64, description="the name of a playbook file")
    reason: str | None = Field(default=None, max_length=1000)
    by: Name | None = None


PersonEmail = Annotated[
    str, Field(min_length=3, max_length=320, description="the email of the person acting"), Storable
]


class ProposeOffer(BaseModel):
    """An offer from the offers file, proposed on a case by a person."""

    model_config = ConfigDict(extra="forbid")
    offer: Annotated[
        str, Field(min_length=1, max_length=64, description="the offer's name in the offers file"), Storable
    ]
    by: PersonEmail


class ApplyOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: PersonEmail


class ApproveOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: PersonEmail
    reason: LongText | None = None


class UndoOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: PersonEmail
    reason: LongText | None = None


class RejectOffer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by: PersonEmail
    reason: LongText = Field(min_length=1)


class OfferView(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    case_id: str
    account_id: str
    source: str
    subscription_id: str
    offer: str
    kind: str
    status: str = Field(description="proposed, awaiting_approval, applied, failed, rejected or undone")
    cost_minor: int
    currency: str
    preview: str = Field(description="what applying changes on the billing system")
    change: dict[str, Any] = Field(description="the billing system's parameters applying sends")
    proposed_by: str
    proposed_at: datetime
    team: str = Field(description="the proposer's team, whose budget the offer draws on")
    approval_reason: str | None
    approver_roles: str | None
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None
    applied_by: str | None
    applied_at: datetime | None
    verified_at: datetime | None = Field(description="read back from the billing system at apply, and holding")
    confirmed_at: datetime | None = Field(
        description="when the billing system's webhook of the change arrived (cancellation.withdrawn, for a kept one)"
    )
    failure: str | None = Field(description="the billing system's message when it refused")
    new_subscription_id: str | None = Field(description="the new subscription a reactivation made (Stripe)")
    undone_by: str | None
    undone_at: datetime | None


class OfferList(BaseModel):
    items: list[OfferView]


class TeamBudget(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    team: str = Field(description="a team of the offers file, or default: everyone in no named team")
    lead: str | None = Field(description="the team's lead (the team is everyone reporting to them); none for default")
    total_minor: int
    spent_minor: int = Field(description="cost of the team's offers applied in the period")
    committed_minor: int = Field(description="cost of the team's offers waiting for approval")
    remaining_minor: int = Field(description="total less spent and committed (negative after approvals past it)")


class OfferBudget(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    period: str = Field(description="month, quarter or year, as the offers file says")
    period_start: datetime
    period_end: datetime
    currency: str
    teams: list[TeamBudget] = Field(description="one budget per team, the default last")
