"""The event contracts: one versioned envelope, one typed payload per event type."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from shared.ids import new_key

# --- Bounds -------------------------------------------------------------------------------------------------
# What the tables downstream hold, declared once. Every edge (webhook mappings, /v1/ bodies and queries, account
# signals) builds these contracts or uses these types, so a value no table can hold is refused where it
# arrives, naming the field, instead of being accepted and failing in a consumer later.
MAX_ID_LENGTH = 255  # String(255): cancellation ids, account ids, event ids
# A billing system's own id: "<source>:" (at most 10 characters) is put in front of it to make an id above.
MAX_EXTERNAL_ID_LENGTH = MAX_ID_LENGTH - len("chargebee:")
MAX_EVENT_TYPE_LENGTH = 128
MAX_NAME_LENGTH = 255
MAX_EMAIL_LENGTH = 320
MAX_CODE_LENGTH = 64  # reason codes, feedback codes, plan intervals
MAX_TEXT_LENGTH = 5000  # a customer's own words, notes
MAX_PLANS = 100
# 10^15 minor units (ten trillion dollars): far above any subscription, far below BigInteger's 9.2 * 10^18.
MAX_AMOUNT_MINOR = 10**15
MAX_COUNT = 10**9  # seats, users, quantities, tickets
MAX_VERSION = 2**63 - 1  # state and signal versions are BigInteger


def storable(text: str) -> str:
    """Text every database can hold: no NUL character (PostgreSQL refuses it) and no lone surrogate."""
    if "\x00" in text:
        raise ValueError("contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (\\ud800-\\udfff), which is not text") from None
    return text


def in_utc(value: datetime) -> datetime:
    """An aware datetime as UTC; one whose offset pushes it past year 1 or 9999 is refused."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC") from None


def clip(value: Any, limit: int) -> str | None:
    """Free text from a billing system cut to fit (a long name or comment must not cost the cancellation)."""
    if not isinstance(value, str) or not value:
        return None
    return value[:limit]


Storable = AfterValidator(storable)
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH), Storable]
ExternalId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EXTERNAL_ID_LENGTH), Storable]
EventType = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EVENT_TYPE_LENGTH), Storable]
Name = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH), Storable]
Email = Annotated[str, StringConstraints(max_length=MAX_EMAIL_LENGTH), Storable]
Code = Annotated[str, StringConstraints(max_length=MAX_CODE_LENGTH), Storable]
LongText = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH), Storable]
AmountMinor = Annotated[int, Field(ge=-MAX_AMOUNT_MINOR, le=MAX_AMOUNT_MINOR)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Version = Annotated[int, Field(ge=0, le=MAX_VERSION)]
Timestamp = Annotated[AwareDatetime, AfterValidator(in_utc)]

Source = Literal["stripe", "chargebee", "api"]
Initiator = Literal["customer", "billing_system", "staff", "unknown"]
RootCause = Literal[
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
]
# What a person found after talking to the customer: one of the root causes, or that it stayed unclear.
ConfirmedRootCause = Literal[RootCause, "unknown"]
# saved: stayed after Brink's work; stayed_unprompted: stayed before any touch (never revenue saved);
# lost: the cancellation took effect; moved_on: decided not to pursue.
Outcome = Literal["saved", "stayed_unprompted", "lost", "moved_on"]
# A save is pending until verified (still active some days later, or the next invoice paid), or reverted by a
# new cancellation inside that window.
SaveStatus = Literal["pending", "verified", "reverted"]


class Payload(BaseModel):
    """Base of every event payload; ``TYPE`` and ``VERSION`` name it on the wire."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)
    amount_minor: AmountMinor = Field(description="amount in the currency's minor unit (cents)")
    currency: str = Field(min_length=3, max_length=3, description="ISO 4217, lower case")


class PlanLine(BaseModel):
    model_config = ConfigDict(frozen=True)
    plan_id: Identifier
    name: Name | None = None
    quantity: Count = 1
    unit_amount_minor: AmountMinor | None = None
    currency: str | None = Field(default=None, min_length=3, max_length=3)
    interval: Code | None = None
    interval_count: Count = 1
    mrr_minor: AmountMinor = 0


class CancellationReceived(Payload):
    """A customer cancelled, or scheduled a cancellation, according to a billing system or a tool."""

    TYPE: ClassVar[str] = "cancellation.received"
    cancellation_id: Identifier = Field(description="stable id of this cancellation: <source>:<subscription id>")
    account_id: Identifier
    source: Source
    source_event_id: Identifier
    source_event_type: EventType
    customer_id: ExternalId
    subscription_id: ExternalId | None = None
    customer_email: Email | None = None
    customer_name: Name | None = None
    account_owner: Name | None = None
    plans: list[PlanLine] = Field(default_factory=list, max_length=MAX_PLANS)
    mrr: Money | None = None
    billing_reason: Code | None = Field(default=None, description="the billing system's own reason")
    feedback: Code | None = Field(default=None, description="the customer's stated reason, as the source coded it")
    comment: LongText | None = Field(default=None, description="the customer's own words")
    initiated_by: Initiator = "unknown"
    initiated_by_detail: Name | None = Field(
        default=None, description="who exactly, as the source names them (Chargebee user, Stripe request id)"
    )
    involuntary: bool = False
    scheduled: bool = Field(default=False, description="takes effect later (at period end or cancel_at)")
    effective_at: Timestamp | None = None
    livemode: bool = True
    state_version: Version = Field(default=0, description="orders events of one subscription")


class CancellationWithdrawn(Payload):
    """The customer is staying: a scheduled cancellation was removed, or the subscription resumed."""

    TYPE: ClassVar[str] = "cancellation.withdrawn"
    cancellation_id: Identifier
    account_id: Identifier
    source: Source
    source_event_id: Identifier
    source_event_type: EventType
    customer_id: ExternalId
    subscription_id: ExternalId | None = None
    reason: Code = "scheduled_cancellation_removed"
    state_version: Version = 0


class InvoicePaid(Payload):
    """A subscription's invoice was paid after its cancellation was withdrawn (not a recovery from a payment
    failure): the next invoice that verifies a pending save early. Ordinary payments publish nothing."""

    TYPE: ClassVar[str] = "invoice.paid"
    cancellation_id: Identifier
    account_id: Identifier
    source: Source
    source_event_id: Identifier
    source_event_type: EventType
    customer_id: ExternalId
    subscription_id: ExternalId | None = None
    state_version: Version = Field(
        default=0, description="the payment's billing version, compared with the withdrawal's"
    )


class AccountSignalsUpdated(Payload):
    TYPE: ClassVar[str] = "account.signals_updated"
    account_id: str
    signal_version: int
    kinds: list[str] = Field(default_factory=list)


class Evidence(BaseModel):
    model_config = ConfigDict(frozen=True)
    signal: str
    detail: str
    weight: float


class Hypothesis(BaseModel):
    model_config = ConfigDict(frozen=True)
    root_cause: str
    confidence: float = Field(ge=0, le=1)
    evidence: list[Evidence] = Field(default_factory=list)


class DiscoveryQuestion(BaseModel):
    """A question to ask the customer; answers go to ``POST /v1/accounts/{account_id}/answers`` by ``id``."""

    model_config = ConfigDict(frozen=True)
    id: str
    text: str
    choices: list[str] = Field(default_factory=list, description="the answers to choose from; empty: free text")


class Unknown(BaseModel):
    model_config = ConfigDict(frozen=True)
    root_cause: str
    signals_to_check: list[str] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list, description="the words of `asks`, for readers of text only")
    asks: list[DiscoveryQuestion] = Field(default_factory=list, description="the questions not yet answered")


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)
    decision: Literal["pursue", "move_on", "discover"]
    reason: str | None = None
    priority: int = Field(default=0, ge=0, le=100)


class SaveRate(BaseModel):
    model_config = ConfigDict(frozen=True)
    playbook: str
    saved: int = Field(ge=0)
    closed: int = Field(ge=0, description="saved or lost cases confirmed as this root cause, worked with it")
    save_rate: float = Field(ge=0, le=1)


class PlaybookChoice(BaseModel):
    """Why the recommended playbook was chosen, from how confirmed cases of the root cause ended."""

    model_config = ConfigDict(frozen=True)
    playbook: str
    reason: str
    save_rate: float = Field(ge=0, le=1)
    closed_cases: int = Field(ge=0)
    compared: list[SaveRate] = Field(default_factory=list)


class DiagnosisCompleted(Payload):
    """Diagnosis of one cancellation: symptom, ranked root causes, unknowns, verdict."""

    TYPE: ClassVar[str] = "diagnosis.completed"
    diagnosis_id: str
    diagnosis_version: int
    cancellation_id: str
    account_id: str
    customer_id: str
    customer_name: str | None = None
    customer_email: Email | None = None
    account_owner: Email | None = Field(
        default=None, description="who owns the account (an email): billing metadata, the internal API or signals"
    )
    source: Source
    mrr: Money | None = None
    effective_at: datetime | None = None
    billing_reason: str | None = None
    stated_reason: str | None = None
    comment: str | None = None
    symptom: str
    root_cause: str
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    unknowns: list[Unknown] = Field(default_factory=list)
    tried: list[str] = Field(default_factory=list)
    verdict: Verdict
    recommended_playbook: str
    incomplete: bool = False
    avoid: list[str] = Field(default_factory=list, description="actions that already failed: do not repeat them")
    signal_version: int = Field(default=0, description="the account signals this diagnosis saw")
    state_version: int = Field(default=0, description="billing version of the cancellation diagnosed (0: unknown)")
    initiated_by: Initiator = "unknown"
    playbook_choice: PlaybookChoice | None = Field(
        default=None, description="set once enough confirmed cases closed: the save rates behind the playbook"
    )


class InterventionLogged(Payload):
    TYPE: ClassVar[str] = "intervention.logged"
    intervention_id: str
    case_id: str
    cancellation_id: str
    account_id: str
    action: str
    result: str
    note: str | None = None
    performed_by: str | None = None
    performed_at: datetime
    playbook: str | None = Field(default=None, description="the playbook the step belongs to (its root cause)")
    move: str | None = Field(
        default=None, description="the playbook step's move (shared/moves.py); none for an escalation rung"
    )


class CaseClosed(Payload):
    """A case ended; the diagnosed and the confirmed root cause side by side, so diagnosis can learn."""

    TYPE: ClassVar[str] = "case.closed"
    case_id: str
    cancellation_id: str
    account_id: str
    outcome: Outcome
    root_cause: str | None = Field(default=None, description="the diagnosed root cause")
    confirmed_root_cause: ConfirmedRootCause | None = Field(
        default=None, description="what the person who closed the case found (None: not recorded)"
    )
    symptom: str | None = Field(default=None, description="what the customer said")
    playbook: str | None = None
    save_status: SaveStatus | None = Field(default=None, description="for saved: pending until verified")
    previous_case_id: str | None = Field(default=None, description="the subscription's case before this one")
    revenue_saved: Money | None = Field(default=None, description="saved only: stayed_unprompted is never a save")
    revenue_lost: Money | None = Field(default=None, description="lost and moved_on")
    closed_at: datetime
    reason: str | None = None


PAYLOAD_TYPES: dict[str, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        CancellationReceived,
        CancellationWithdrawn,
        InvoicePaid,
        AccountSignalsUpdated,
        DiagnosisCompleted,
        InterventionLogged,
        CaseClosed,
    )
}


class UnknownEventType(ValueError):
    pass


# Every outbox holds a correlation id in String(128), and AMQP carries it in at most 255 bytes.
MAX_CORRELATION_ID_LENGTH = 128


def correlation_id_from(text: str) -> str:
    """``text`` as a correlation id where it fits (printable ASCII, 128 characters at most), else an id made from it,
    the same each time: events correlated by a cancellation id of up to 255 characters stay correlated."""
    if len(text) <= MAX_CORRELATION_ID_LENGTH and text.isascii() and text.isprintable():
        return text
    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))


class Envelope(BaseModel):
    """What travels on the wire. ``id`` is the de-duplication key for every consumer."""

    model_config = ConfigDict(frozen=True)
    id: uuid.UUID = Field(default_factory=new_key)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str
    source: str
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls, payload: Payload, *, correlation_id: str, source: str, occurred_at: datetime | None = None
    ) -> Envelope:
        """Put a typed payload in an envelope."""
        return cls(
            type=payload.TYPE,
            version=payload.VERSION,
            occurred_at=occurred_at or datetime.now(UTC),
            correlation_id=correlation_id,
            source=source,
            data=payload.model_dump(mode="json"),
        )

    def payload(self) -> Payload:
        """The typed payload; raises UnknownEventType or a ValidationError for bad data."""
        cls = PAYLOAD_TYPES.get(self.type)
        if cls is None:
            raise UnknownEventType(f"unknown event type {self.type!r}")
        if self.version != cls.VERSION:
            raise UnknownEventType(f"{self.type} version {self.version} is not understood (expected {cls.VERSION})")
        return cls.model_validate(self.data)

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, body: bytes) -> Envelope:
        return cls.model_validate_json(body)
