"""Event payloads (v1) and the typed envelopes that carry them.

Each event type is one envelope class whose ``type`` is a ``Literal`` of its versioned name, so a
single discriminated union decodes any message and an unknown type or version is a validation
error (dead-lettered), never a guess. A breaking change to a payload means a new ``...v2`` type
next to the old one; consumers keep accepting the versions they know.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import AwareDatetime, ConfigDict, Field, TypeAdapter, model_validator

from riskrelay.shared.envelope import CloudEvent, Contract

# ---------------------------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------------------------


class RiskLevel(IntEnum):
    """The protocol's five risk levels."""

    MINIMAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @property
    def label(self) -> str:
        """The protocol's name for the level, e.g. `Critical`."""
        return self.name.title()


class RiskCategory(StrEnum):
    """The protocol's risk categories (its "Scope" list)."""

    DATA_SECURITY_PRIVACY = "data_security_privacy"
    PRODUCT_SAFETY = "product_safety"
    SERVICE_DISRUPTION = "service_disruption"
    COMPLIANCE = "compliance"
    REPUTATION = "reputation"
    OPERATIONAL = "operational"


class Indicator(StrEnum):
    """The protocol's seven risk indicators, plus the agent's manual Risk Flag."""

    MULTIPLE_SIMILAR_REPORTS = "multiple_similar_reports"
    DATA_CONCERN = "data_concern"
    SECURITY_ISSUE = "security_issue"
    COMPLIANCE_QUESTION = "compliance_question"
    SEVERE_IMPACT = "severe_impact"
    REPUTATION_THREAT = "reputation_threat"
    UNUSUAL_PATTERN = "unusual_pattern"
    AGENT_RISK_FLAG = "agent_risk_flag"


class PersonalDataKind(StrEnum):
    """Kinds of personal data intake redacts; a flagged event lists the kinds it saw.

    ``national_id`` covers identity numbers (SSN, NI number, tax id) and identity-document
    numbers (passport, driving licence, identity card); ``secret`` covers passwords, PINs,
    one-time codes, API keys and tokens.
    """

    EMAIL = "email"
    PHONE = "phone"
    CARD = "card"
    IBAN = "iban"
    IP_ADDRESS = "ip_address"
    NATIONAL_ID = "national_id"
    NAME = "name"
    POSTAL_ADDRESS = "postal_address"
    DATE_OF_BIRTH = "date_of_birth"
    SECRET = "secret"


class Role(StrEnum):
    """Who may call what. Roles come from bearer tokens; see ``riskrelay.shared.auth``."""

    UPSTREAM = "upstream"
    AGENT = "agent"
    TEAM_LEAD = "team_lead"
    SUPPORT_MANAGER = "support_manager"
    SUPPORT_DIRECTOR = "support_director"
    RISK_MANAGEMENT = "risk_management"
    ANALYST = "analyst"
    ADMIN = "admin"


class TicketEventKind(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    COMMENTED = "commented"
    CLOSED = "closed"


class EscalationReason(StrEnum):
    """Why an ``escalation-due`` fired."""

    INITIAL = "initial"
    REMINDER = "reminder"
    PRE_BREACH_WARNING = "pre_breach_warning"
    BREACH = "breach"
    WEEKLY_REVIEW = "weekly_review"


class ReviewDecision(StrEnum):
    """A Support Manager's Level 3 review outcome."""

    CONFIRMED = "confirmed"
    NOT_CONFIRMED = "not_confirmed"


class RiskStatus(StrEnum):
    """Lifecycle of a Risk Register entry."""

    IDENTIFIED = "identified"
    ESCALATED = "escalated"
    UNDER_JOINT_ASSESSMENT = "under_joint_assessment"
    RESPONSE_PLANNED = "response_planned"
    MITIGATING = "mitigating"
    MONITORING = "monitoring"
    CLOSED = "closed"
    REOPENED = "reopened"


class Treatment(StrEnum):
    ACCEPT = "accept"
    MITIGATE = "mitigate"
    AVOID = "avoid"
    TRANSFER = "transfer"


class FeedbackKind(StrEnum):
    """What a person says about a detection: it was no risk, its level was wrong, or a ticket
    shows a risk nobody flagged (a near miss)."""

    NOT_A_RISK = "not_a_risk"
    WRONG_LEVEL = "wrong_level"
    MISSED_RISK = "missed_risk"


class FeedbackTextSource(StrEnum):
    """Where a redacted text of a feedback came from."""

    SENTENCE = "sentence"
    """The sentence a learned model fired on (a ``model.*`` detection's evidence)."""
    MATCH = "match"
    """The span a rule matched (or its computed reason)."""
    SUBJECT = "subject"
    """The ticket's redacted subject."""
    SUMMARY = "summary"
    """The redacted summary (of the ticket, or of the risk)."""


# ---------------------------------------------------------------------------------------------
# Upstream input contract: riskrelay.ticket.{created,updated,commented,closed}.v1
# ---------------------------------------------------------------------------------------------

ShortText = Annotated[str, Field(max_length=256)]


class Customer(Contract):
    id: ShortText = Field(min_length=1, description="Upstream customer id (pseudonymous is fine).")
    segment: ShortText = Field(
        description="Customer segment, e.g. `consumer`, `smb`, `enterprise`, `public_sector`."
    )
    vulnerable: bool = Field(
        default=False,
        description="The customer is known to be vulnerable (raises impact in the risk policy).",
    )
    name: ShortText | None = Field(
        default=None,
        description=(
            "The customer's name, if the helpdesk knows it. Intake only uses it to redact the "
            "name from the ticket's text; it is never copied into an outgoing event."
        ),
    )


class RiskFlag(Contract):
    """The protocol's Risk Flag template, filled in by the agent who spotted the risk."""

    level: RiskLevel = Field(description="The level the agent believes applies (1-5); a floor.")
    category: RiskCategory | None = Field(default=None, description="The agent's category.")
    description: str = Field(
        default="", max_length=4000, description="What the agent observed, in their words."
    )
    affected_customers: int | None = Field(
        default=None, ge=0, description="Customers the agent believes are affected."
    )
    containment: str | None = Field(
        default=None, max_length=4000, description="Initial containment the agent applied."
    )


class Comment(Contract):
    author_type: Literal["customer", "agent", "system"] = Field(
        description="Who wrote the comment."
    )
    body: str = Field(max_length=200_000, description="Comment text; may contain HTML.")


class TicketData(Contract):
    """Payload of every upstream ticket event: the ticket as it is after the event."""

    ticket_id: ShortText = Field(min_length=1, description="Upstream ticket id; the message key.")
    subject: str = Field(max_length=2_000, description="Ticket subject line.")
    description: str = Field(
        max_length=200_000, description="Ticket body as the customer wrote it; may contain HTML."
    )
    channel: ShortText = Field(
        description="Channel: email, chat, phone, web, social, api (synonyms are normalized)."
    )
    customer: Customer = Field(description="Who reported it.")
    product: ShortText = Field(description="Product or service the ticket is about.")
    priority: ShortText = Field(
        description="Upstream priority: low, normal, high, urgent (synonyms are normalized)."
    )
    tags: list[ShortText] = Field(default_factory=list, max_length=100, description="Ticket tags.")
    agent_id: ShortText | None = Field(default=None, description="Assigned agent, if any.")
    agent_name: ShortText | None = Field(
        default=None,
        description=(
            "The agent's name (the assignee, or the agent who wrote the comment), if known. "
            "Like `customer.name`, only used to redact it from the text; never copied into an "
            "outgoing event."
        ),
    )
    risk_flag: RiskFlag | None = Field(default=None, description="The agent's Risk Flag, if set.")
    comment: Comment | None = Field(
        default=None, description="The new comment; required on `commented` events."
    )


TICKET_EVENT_TYPES = {
    TicketEventKind.CREATED: "riskrelay.ticket.created.v1",
    TicketEventKind.UPDATED: "riskrelay.ticket.updated.v1",
    TicketEventKind.COMMENTED: "riskrelay.ticket.commented.v1",
    TicketEventKind.CLOSED: "riskrelay.ticket.closed.v1",
}


class TicketEvent(CloudEvent[TicketData]):
    """Upstream ticket event. ``id`` is the upstream event id, ``source`` the upstream system."""

    type: Literal[
        "riskrelay.ticket.created.v1",
        "riskrelay.ticket.updated.v1",
        "riskrelay.ticket.commented.v1",
        "riskrelay.ticket.closed.v1",
    ] = Field(description="Which ticket change this is.")

    @property
    def kind(self) -> TicketEventKind:
        return TicketEventKind(self.type.split(".")[2])

    @model_validator(mode="after")
    def _comment_present_on_commented(self) -> Self:
        if self.type == TICKET_EVENT_TYPES[TicketEventKind.COMMENTED] and self.data.comment is None:
            raise ValueError("data.comment is required on riskrelay.ticket.commented.v1")
        return self


# ---------------------------------------------------------------------------------------------
# ticket-flagged: riskrelay.ticket.flagged.v1 (intake -> classifier)
# ---------------------------------------------------------------------------------------------


class NearestExample(Contract):
    """A labelled example sentence close to what triggered a model detection."""

    text: str = Field(max_length=1_000, description="The labelled example sentence.")
    similarity: float = Field(ge=-1.0, le=1.0, description="Cosine similarity to the trigger.")


class ModelExplanation(Contract):
    """Why a learned indicator model fired: its score against its threshold and the labelled
    examples nearest to the triggering sentence."""

    score: float = Field(ge=0.0, le=1.0, description="The model's score for the sentence.")
    threshold: float = Field(ge=0.0, le=1.0, description="Score at or above which it fires.")
    model_version: str = Field(max_length=128, description="Content id of the trained models.")
    encoder: str = Field(max_length=128, description="Content id of the sentence encoder.")
    nearest_examples: list[NearestExample] = Field(
        default_factory=list, max_length=10, description="Closest labelled positives."
    )


class Detection(Contract):
    """One indicator found by one rule or model, with the evidence that makes it reviewable."""

    indicator: Indicator = Field(description="Which protocol indicator this is.")
    rule_id: str = Field(max_length=128, description="Id of the rule that fired.")
    evidence: str = Field(
        max_length=1_000, description="Matched span of the *redacted* text, or a computed reason."
    )
    confidence: float = Field(ge=0.0, le=1.0, description="Rule confidence, 0-1.")
    explanation: ModelExplanation | None = Field(
        default=None,
        description="For detections of a learned model (`model.*` rule ids): score, threshold,"
        " model version and nearest labelled examples; `evidence` is the triggering sentence.",
    )


class ClusterInfo(Contract):
    """Intake's view of the similar-report cluster this ticket belongs to."""

    cluster_id: str = Field(max_length=128, description="Stable id of the cluster.")
    size: int = Field(ge=1, description="Tickets in the cluster so far.")
    distinct_customers: int = Field(ge=1, description="Distinct customers in the cluster.")
    surging: bool = Field(description="The cluster reached the surge threshold.")
    first_seen_at: AwareDatetime = Field(description="Event time of its first ticket.")


class TicketFlagged(Contract):
    """A ticket that shows at least one risk indicator, with all personal data redacted."""

    ticket_id: ShortText = Field(description="Upstream ticket id.")
    upstream_event_id: ShortText = Field(description="Id of the upstream event that led here.")
    upstream_source: str = Field(max_length=512, description="Upstream system (`source`).")
    event_kind: TicketEventKind = Field(description="created, updated, commented or closed.")
    occurred_at: AwareDatetime = Field(description="Event time of the upstream event.")
    channel: ShortText = Field(description="Normalized channel.")
    priority: ShortText = Field(description="Normalized priority.")
    product: ShortText = Field(description="Product or service.")
    customer_id: ShortText = Field(description="Upstream customer id.")
    customer_segment: ShortText = Field(description="Customer segment.")
    customer_vulnerable: bool = Field(default=False, description="Customer known to be vulnerable.")
    agent_id: ShortText | None = Field(default=None, description="Assigned agent.")
    tags: list[ShortText] = Field(default_factory=list, description="Normalized ticket tags.")
    redacted_subject: str = Field(max_length=2_000, description="Subject after redaction.")
    redacted_summary: str = Field(
        max_length=2_000, description="Start of the redacted description, for reviewers."
    )
    indicators: list[Detection] = Field(min_length=1, description="Every indicator detected.")
    new_indicators: list[Indicator] = Field(
        default_factory=list,
        description="Indicators this event added over the ticket's earlier flags (follow-ups).",
    )
    data_classification: list[PersonalDataKind] = Field(
        default_factory=list, description="Kinds of personal data seen (and redacted)."
    )
    financial_amount: float | None = Field(
        default=None, ge=0, description="Largest money amount mentioned, if any (impact signal)."
    )
    risk_flag: RiskFlag | None = Field(default=None, description="The agent's Risk Flag, if set.")
    cluster: ClusterInfo | None = Field(
        default=None, description="The similar-report cluster, when the ticket is in one."
    )
    rule_pack_version: str = Field(max_length=64, description="Version of intake's rule pack.")


class TicketFlaggedEvent(CloudEvent[TicketFlagged]):
    type: Literal["riskrelay.ticket.flagged.v1"] = "riskrelay.ticket.flagged.v1"


# ---------------------------------------------------------------------------------------------
# risk-classified: riskrelay.risk.classified.v1 (classifier -> escalator, register, reporting)
# ---------------------------------------------------------------------------------------------


class RuleContribution(Contract):
    """One policy rule that fired, and what it contributed to the decision."""

    rule_id: str = Field(max_length=128, description="Policy rule id.")
    description: str = Field(max_length=1_000, description="What the rule means, for reviewers.")
    level: RiskLevel | None = Field(default=None, description="Level the rule proposes, if any.")
    category: RiskCategory | None = Field(default=None, description="Category it proposes.")
    effect: Literal["sets_level", "raises_level", "floor", "sets_category", "modifier"] = Field(
        description="How the rule acted on the decision."
    )
    decisive: bool = Field(description="Whether this rule determined the final level.")


class Override(Contract):
    """A human decision that replaced the automatic level."""

    by: ShortText = Field(description="Who overrode (token subject).")
    role: Role = Field(description="Their role.")
    reason: str = Field(min_length=1, max_length=4_000, description="Why; mandatory.")


class RiskClassified(Contract):
    """The protocol's level and category for one risk, with the reasons."""

    risk_id: ShortText = Field(description="Risk id; derived from the cluster id when clustered.")
    level: RiskLevel = Field(description="Risk level 1-5.")
    category: RiskCategory = Field(description="Risk category.")
    previous_level: RiskLevel | None = Field(
        default=None, description="Level before this event, on an upgrade or override."
    )
    ticket_id: ShortText = Field(
        description=(
            "The ticket whose flag caused this event. Every ticket that joins the risk is named "
            "here or in `ticket_ids` of an event of the risk."
        )
    )
    ticket_ids: list[ShortText] = Field(
        description=(
            "The risk's tickets in the order they joined, the first 1000 (the register's "
            "`GET /v1/risks/{id}` lists every one)."
        )
    )
    ticket_count: int = Field(
        ge=1, description="Tickets that joined the risk; the length of `ticket_ids` up to 1000."
    )
    distinct_customers: int = Field(ge=1, description="Distinct customers of those tickets.")
    cluster_id: str | None = Field(default=None, max_length=128, description="Intake's cluster.")
    customer_segments: list[ShortText] = Field(default_factory=list, description="Segments hit.")
    products: list[ShortText] = Field(default_factory=list, description="Products involved.")
    channels: list[ShortText] = Field(default_factory=list, description="Channels reported on.")
    indicators: list[Indicator] = Field(description="Indicators seen across the risk's tickets.")
    title: str = Field(max_length=500, description="Short redacted title for people.")
    redacted_summary: str = Field(max_length=2_000, description="Redacted description.")
    first_reported_at: AwareDatetime = Field(description="Event time of the first ticket.")
    flagged_at: AwareDatetime = Field(
        description="Event time the risk reached this level; escalation clocks start here."
    )
    policy_version: str = Field(max_length=64, description="Risk policy version used.")
    rules_fired: list[RuleContribution] = Field(description="Every rule that fired.")
    evidence: list[Detection] = Field(description="Indicator evidence behind the decision.")
    override: Override | None = Field(default=None, description="Set when a human set the level.")
    data_classification: list[PersonalDataKind] = Field(
        default_factory=list, description="Personal data kinds seen across the risk's tickets."
    )


class RiskClassifiedEvent(CloudEvent[RiskClassified]):
    type: Literal["riskrelay.risk.classified.v1"] = "riskrelay.risk.classified.v1"


# ---------------------------------------------------------------------------------------------
# escalation-due and escalation-acks
# ---------------------------------------------------------------------------------------------


class EscalationDue(Contract):
    """A timer of an escalation plan fired: someone must be told, reminded, or alarmed."""

    escalation_id: ShortText = Field(description="Id of the escalation step (risk, level, role).")
    risk_id: ShortText = Field(description="The risk.")
    level: RiskLevel = Field(description="Risk level the plan was built for.")
    step: int = Field(ge=0, description="Position of the step in the frozen plan.")
    target_role: Role = Field(description="Role to notify.")
    reason: EscalationReason = Field(description="Why this fired.")
    due_at: AwareDatetime = Field(description="When the timer was due.")
    ack_due_at: AwareDatetime | None = Field(
        default=None, description="When the acknowledgement of this step is due."
    )
    timeframe_due_at: AwareDatetime | None = Field(
        default=None, description="The level's protocol deadline."
    )
    attempt: int = Field(default=1, ge=1, description="1 for the first notice, 2+ for repeats.")
    title: str = Field(default="", max_length=500, description="Risk title for the notice.")
    plan_version: int = Field(default=1, ge=1, description="Version of the frozen plan (fence).")
    missed_reminders: int = Field(
        default=0,
        ge=0,
        description=(
            "Earlier reminders of this step and role that were not sent: they were more than a"
            " repeat interval overdue when this reminder fired, and this one stands for them."
        ),
    )
    missed_since: AwareDatetime | None = Field(
        default=None, description="When the earliest of the missed reminders was due."
    )


class EscalationDueEvent(CloudEvent[EscalationDue]):
    type: Literal["riskrelay.escalation.due.v1"] = "riskrelay.escalation.due.v1"


class EscalationAcknowledged(Contract):
    """Somebody acknowledged an escalation step (or reviewed a Level 3 risk)."""

    escalation_id: ShortText = Field(description="The escalation step acknowledged.")
    risk_id: ShortText = Field(description="The risk.")
    role: Role = Field(description="Role of the person acknowledging.")
    acknowledged_by: ShortText = Field(description="Who acknowledged.")
    acknowledged_at: AwareDatetime = Field(description="When.")
    decision: ReviewDecision | None = Field(
        default=None, description="A Support Manager's Level 3 review decision."
    )
    note: str | None = Field(default=None, max_length=4_000, description="Free text.")


class EscalationAcknowledgedEvent(CloudEvent[EscalationAcknowledged]):
    type: Literal["riskrelay.escalation.acknowledged.v1"] = "riskrelay.escalation.acknowledged.v1"


# ---------------------------------------------------------------------------------------------
# risk-registered: riskrelay.risk.registered.v1 (register -> risk analysts, reporting)
# ---------------------------------------------------------------------------------------------


class MitigationPlan(Contract):
    strategy: str = Field(max_length=8_000, description="Mitigation strategy.")
    owner: ShortText | None = Field(default=None, description="Who owns the plan.")
    target_date: datetime | None = Field(default=None, description="Target completion.")


class RiskRegisterEntry(Contract):
    """The full current state of one Risk Register entry (levels 3-5)."""

    risk_id: ShortText = Field(description="Risk id.")
    version: int = Field(ge=1, description="Entry version; increases with every change.")
    title: str = Field(max_length=500, description="Short title.")
    redacted_summary: str = Field(max_length=2_000, description="Redacted description.")
    level: RiskLevel = Field(description="Current level.")
    category: RiskCategory = Field(description="Current category.")
    status: RiskStatus = Field(description="Lifecycle status.")
    owner: ShortText | None = Field(default=None, description="Accountable owner.")
    first_reported_at: AwareDatetime = Field(description="First ticket's event time.")
    last_reported_at: AwareDatetime = Field(description="Latest ticket's event time.")
    ticket_count: int = Field(
        ge=0, description="Linked tickets; the length of `ticket_ids` up to 1000."
    )
    distinct_customers: int = Field(ge=0, description="Distinct customers of those tickets.")
    customer_segments: list[ShortText] = Field(default_factory=list, description="Segments.")
    products: list[ShortText] = Field(default_factory=list, description="Products.")
    indicators: list[Indicator] = Field(default_factory=list, description="Indicators seen.")
    policy_version: str = Field(max_length=64, description="Risk policy version.")
    likelihood: int | None = Field(default=None, ge=1, le=5, description="Likelihood 1-5.")
    impact: int | None = Field(default=None, ge=1, le=5, description="Impact 1-5.")
    inherent_score: int | None = Field(default=None, description="likelihood x impact.")
    residual_score: int | None = Field(default=None, description="Score after treatment.")
    treatment: Treatment | None = Field(default=None, description="Chosen treatment.")
    mitigation: MitigationPlan | None = Field(default=None, description="Mitigation plan.")
    communication_template: str | None = Field(
        default=None, max_length=20_000, description="Customer communication template."
    )
    assessment: str | None = Field(
        default=None, max_length=20_000, description="Risk Management's assessment results."
    )
    resolution_verification: str | None = Field(
        default=None, max_length=8_000, description="How resolution was verified."
    )
    prevention_measures: str | None = Field(
        default=None, max_length=8_000, description="Measures against recurrence."
    )
    next_review_at: AwareDatetime | None = Field(default=None, description="Next review due.")
    updated_at: AwareDatetime = Field(description="When this version was written.")
    ticket_ids: list[ShortText] = Field(
        default_factory=list,
        description=(
            "Linked tickets in the order they joined, the first 1000 "
            "(`GET /v1/risks/{id}` lists every one under `tickets`)."
        ),
    )


class RiskRegisteredEvent(CloudEvent[RiskRegisterEntry]):
    type: Literal["riskrelay.risk.registered.v1"] = "riskrelay.risk.registered.v1"


# ---------------------------------------------------------------------------------------------
# risk-feedback: riskrelay.risk.feedback.v1 (people through the console -> intake, reporting)
# ---------------------------------------------------------------------------------------------


class FeedbackText(Contract):
    """One redacted text a feedback refers to, as intake or the classifier published it."""

    text: str = Field(min_length=1, max_length=2_000, description="The redacted text.")
    source: FeedbackTextSource = Field(description="sentence, match, subject or summary.")
    indicator: Indicator | None = Field(
        default=None, description="The indicator the text was detected as (evidence only)."
    )


class RiskFeedback(Contract):
    """A person's judgement of a detection: the labelled example intake learns from.

    ``texts`` holds only redacted text (what intake and the classifier published); the person
    is the signed-in identity of whoever gave it, never a role alone."""

    # The rules of ``_consistent`` that JSON Schema can say, so the published schema says them.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": ["ticket_id"]}, {"required": ["risk_id"]}],
            "if": {"properties": {"kind": {"const": "wrong_level"}}},
            "then": {"required": ["correct_level"]},
        },
    )

    kind: FeedbackKind = Field(description="not_a_risk, wrong_level or missed_risk.")
    ticket_id: ShortText | None = Field(default=None, description="The ticket it is about.")
    risk_id: ShortText | None = Field(default=None, description="The risk it is about.")
    given_by: ShortText = Field(min_length=1, description="Who (the person's token subject).")
    role: Role = Field(description="The role they gave it in.")
    given_at: AwareDatetime = Field(description="When.")
    note: str | None = Field(default=None, max_length=4_000, description="Free text.")
    level: RiskLevel | None = Field(
        default=None, description="The level the risk had when the feedback was given."
    )
    correct_level: RiskLevel | None = Field(
        default=None, description="The right level; required on wrong_level, only there."
    )
    indicators: list[Indicator] = Field(
        default_factory=list,
        max_length=len(Indicator),
        description=(
            "not_a_risk and wrong_level: the indicators it was flagged with; missed_risk: the"
            " indicator the person names (none: a problem report without a named indicator)."
        ),
    )
    texts: list[FeedbackText] = Field(
        default_factory=list, max_length=50, description="The redacted texts it refers to."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.ticket_id is None and self.risk_id is None:
            raise ValueError("feedback names a ticket_id, a risk_id or both")
        if (self.kind == FeedbackKind.WRONG_LEVEL) != (self.correct_level is not None):
            raise ValueError("correct_level is required on wrong_level and only there")
        if self.kind == FeedbackKind.MISSED_RISK:
            if self.ticket_id is None:
                raise ValueError("missed_risk names the ticket that shows the risk")
            if len(self.indicators) > 1:
                raise ValueError("missed_risk names at most one indicator")
        if len(set(self.indicators)) != len(self.indicators):
            raise ValueError("indicators are listed once each")
        return self


class RiskFeedbackEvent(CloudEvent[RiskFeedback]):
    type: Literal["riskrelay.risk.feedback.v1"] = "riskrelay.risk.feedback.v1"


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

AnyEvent = Annotated[
    TicketEvent
    | TicketFlaggedEvent
    | RiskClassifiedEvent
    | EscalationDueEvent
    | EscalationAcknowledgedEvent
    | RiskRegisteredEvent
    | RiskFeedbackEvent,
    Field(discriminator="type"),
]

ENVELOPE_CLASSES: tuple[type[CloudEvent[Any]], ...] = (
    TicketEvent,
    TicketFlaggedEvent,
    RiskClassifiedEvent,
    EscalationDueEvent,
    EscalationAcknowledgedEvent,
    RiskRegisteredEvent,
    RiskFeedbackEvent,
)

any_event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


def decode_event(raw: bytes | str) -> AnyEvent:
    """Decode any riskrelay event; raises ``pydantic.ValidationError`` on anything else."""
    return any_event_adapter.validate_json(raw)
