"""Intake's pure decisions: from an upstream ticket event to what must be flagged.

The pipeline for one event is

    size limits -> normalize (HTML, Unicode, quoted replies) -> redact personal data
    -> strip boilerplate -> single-ticket rules (+ money amount, + agent Risk Flag)
    -> semantic cascade (model detections; problem reports get a vector)
    -> similar-report cluster of problem reports (surge) -> rate baseline (unusual pattern)
    -> compare with the ticket's earlier flags -> ``TicketFlagged`` payloads

:func:`assess_ticket` covers the stateless part and returns a :class:`TicketAssessment`
(frozen, JSON-serializable: the handler may store it, because when a cluster surges later the
earlier tickets are flagged from their stored assessments, see :func:`reflag_for_surge`).
:func:`decide_ticket` runs the stateful part over explicit state objects that the caller loads
and persists (:class:`~riskrelay.intake.clustering.ClusterIndex`,
:class:`~riskrelay.intake.patterns.RateBaselines`) and the ticket's known indicators. Nothing
here reads a clock or does I/O: event time comes from the event.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PrivateAttr

from riskrelay.intake.clustering import (
    DEFAULT_CLUSTER_CONFIG,
    ClusterAssignment,
    ClusterConfig,
    ClusterIndex,
    assign_to_cluster,
)
from riskrelay.intake.detection import (
    agent_risk_flag_detection,
    detect_indicators,
    strip_boilerplate,
)
from riskrelay.intake.followups import FollowUpDecision, decide_follow_up, ordered
from riskrelay.intake.money import largest_amount
from riskrelay.intake.normalization import (
    CHANNELS,
    DEFAULT_SIZE_LIMITS,
    PRIORITIES,
    SizeLimits,
    Vocabulary,
    enforce_size_limit,
    normalize_tags,
    normalize_text,
)
from riskrelay.intake.patterns import (
    DEFAULT_RATE_CONFIG,
    RateBaselines,
    RateConfig,
    RateObservation,
    observe_ticket,
)
from riskrelay.intake.redaction import DEFAULT_REDACTOR, KnownNames, Redactor
from riskrelay.intake.rules import RulePack
from riskrelay.intake.semantic.detector import SemanticDetector, SemanticText, looks_english
from riskrelay.intake.semantic.model import Vector
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import (
    ClusterInfo,
    Detection,
    Indicator,
    PersonalDataKind,
    RiskFlag,
    RiskLevel,
    TicketEvent,
    TicketEventKind,
    TicketFlagged,
    TicketFlaggedEvent,
)

INTAKE_SOURCE = "riskrelay/intake"
_SUMMARY_LIMIT = 2_000
_SUBJECT_LIMIT = 2_000


@dataclass(frozen=True)
class AssessmentConfig:
    """Everything :func:`assess_ticket` needs besides the rule pack; build once at start-up."""

    size_limits: SizeLimits = DEFAULT_SIZE_LIMITS
    redactor: Redactor = field(default_factory=lambda: DEFAULT_REDACTOR)
    channels: Vocabulary = CHANNELS
    priorities: Vocabulary = PRIORITIES
    clusters: ClusterConfig = DEFAULT_CLUSTER_CONFIG
    rates: RateConfig = DEFAULT_RATE_CONFIG
    summary_chars: int = 500
    semantic: SemanticDetector | None = None
    """The learned indicator models; ``None`` runs the rules alone."""


DEFAULT_ASSESSMENT_CONFIG = AssessmentConfig()


class TicketAssessment(BaseModel):
    """Everything intake concluded about one ticket event, with all personal data redacted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ticket_id: str
    upstream_event_id: str
    upstream_source: str
    event_kind: TicketEventKind
    occurred_at: AwareDatetime
    channel: str = Field(description="Canonical channel.")
    priority: str = Field(description="Canonical priority.")
    product: str
    customer_id: str
    customer_segment: str
    customer_vulnerable: bool
    agent_id: str | None
    tags: list[str]
    redacted_subject: str
    redacted_summary: str
    detections: list[Detection] = Field(description="Single-ticket detections (text, agent flag).")
    data_classification: list[PersonalDataKind]
    financial_amount: float | None
    risk_flag: RiskFlag | None = Field(description="The agent's Risk Flag, free text redacted.")
    rule_pack_version: str
    english: bool = Field(
        default=True,
        description="Whether the text reads as English; the indicator models are English-only.",
    )
    problem: bool = Field(
        default=False,
        description="Whether the ticket reports a problem rather than a routine request.",
    )
    # The semantic cascade's input and output for this event only: never stored or published.
    _semantic_text: SemanticText | None = PrivateAttr(default=None)
    _cluster_vector: Vector | None = PrivateAttr(default=None)

    @property
    def indicators(self) -> list[Indicator]:
        return ordered(d.indicator for d in self.detections)

    @property
    def cluster_vector(self) -> Vector | None:
        """The full encoder's embedding of the ticket when it reports a problem (after
        :func:`complete_assessments`); only problems join similar-report clusters."""
        return self._cluster_vector


def _summary(text: str, limit: int) -> str:
    """Start of ``text`` cut at a word boundary, never inside a ``[PLACEHOLDER]``."""
    limit = min(limit, _SUMMARY_LIMIT)
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit - 1)
    cut = cut if cut > limit // 2 else limit - 1
    opening = text.rfind("[", 0, cut)
    if opening != -1 and text.find("]", opening, cut) == -1:
        cut = opening
    return text[:cut].rstrip() + "…"


def assess_ticket(
    event: TicketEvent,
    rule_pack: RulePack,
    config: AssessmentConfig = DEFAULT_ASSESSMENT_CONFIG,
) -> TicketAssessment:
    """Normalize, redact and detect one ticket event (stateless; the semantic cascade's second
    stage runs per batch, see :func:`complete_assessments`).

    Raises :class:`~riskrelay.intake.errors.IntakeRejection` subclasses for input intake
    refuses: over-large fields, unknown channel or priority.
    """
    data = event.data
    limits = config.size_limits
    enforce_size_limit("subject", data.subject, limits.subject)
    enforce_size_limit("description", data.description, limits.description)
    if data.comment is not None:
        enforce_size_limit("comment.body", data.comment.body, limits.comment)
    if data.risk_flag is not None:
        enforce_size_limit(
            "risk_flag.description", data.risk_flag.description, limits.risk_flag_description
        )
    channel = config.channels.normalize(data.channel)
    priority = config.priorities.normalize(data.priority)

    redactor = config.redactor
    kinds: set[PersonalDataKind] = set()
    normalized_subject = normalize_text(data.subject)
    normalized_description = normalize_text(data.description)
    normalized_comment = normalize_text(data.comment.body) if data.comment else ""

    # The event's names are only used to find them in its text; they are never copied out.
    known_names = KnownNames.of(data.customer.name, data.agent_name)

    def redacted(text: str) -> str:
        result = redactor.redact(text, known_names)
        kinds.update(result.kinds)
        return result.text

    subject = redacted(normalized_subject)
    description = strip_boilerplate(redacted(normalized_description), rule_pack)
    comment = (
        strip_boilerplate(redacted(normalized_comment), rule_pack) if normalized_comment else ""
    )
    # A placeholder can be longer than what it replaces; the contract caps tags at 256.
    tags = [redacted(tag)[:256] for tag in normalize_tags(data.tags)]

    amount = largest_amount(
        "\n".join((normalized_subject, normalized_description, normalized_comment))
    )
    detection_text = "\n\n".join(part for part in (subject, description, comment) if part)
    detections = detect_indicators(detection_text, rule_pack, amount)

    risk_flag: RiskFlag | None = None
    if data.risk_flag is not None:
        flag_description = redacted(normalize_text(data.risk_flag.description))[:4_000]
        containment = data.risk_flag.containment
        # Validated again (not model_copy) so the redacted text still meets the contract.
        risk_flag = RiskFlag.model_validate(
            {
                **data.risk_flag.model_dump(),
                "description": flag_description,
                "containment": (
                    redacted(normalize_text(containment))[:4_000] if containment else containment
                ),
            }
        )
        detections.append(agent_risk_flag_detection(risk_flag, _summary(flag_description, 300)))

    assessment = TicketAssessment(
        ticket_id=data.ticket_id,
        upstream_event_id=event.id,
        upstream_source=event.source,
        event_kind=event.kind,
        occurred_at=event.time,
        channel=channel,
        priority=priority,
        product=data.product,
        customer_id=data.customer.id,
        customer_segment=data.customer.segment,
        customer_vulnerable=data.customer.vulnerable,
        agent_id=data.agent_id,
        tags=tags,
        redacted_subject=_summary(subject, _SUBJECT_LIMIT),
        redacted_summary=_summary(description, config.summary_chars),
        detections=detections,
        data_classification=[kind for kind in PersonalDataKind if kind in kinds],
        financial_amount=amount,
        risk_flag=risk_flag,
        rule_pack_version=rule_pack.version,
        english=looks_english(description or subject),
    )
    if config.semantic is not None:
        assessment._semantic_text = (detection_text, f"{subject}\n{description}")
    return assessment


def complete_assessments(
    assessments: Sequence[TicketAssessment], detector: SemanticDetector | None
) -> list[TicketAssessment]:
    """The semantic cascade for a batch: one static-table pass over every ticket's sentences,
    then one full-encoder pass over the sentences it left uncertain; each assessment gains its
    model detections, whether it reports a problem, and its embedding when it does."""
    if detector is None:
        return list(assessments)
    texted = [i for i, a in enumerate(assessments) if a._semantic_text is not None]
    screenings = detector.screen([assessments[i]._semantic_text or ("", "") for i in texted])
    pending = [(i, s) for i, s in zip(texted, screenings, strict=True) if s.needs_full]
    results = detector.detect([s for _, s in pending])
    completed = list(assessments)
    for (i, _), result in zip(pending, results, strict=True):
        if not (result.detections or result.problem):
            continue
        completed[i] = assessments[i].model_copy(
            update={
                "detections": [*assessments[i].detections, *result.detections],
                "problem": result.problem,
            }
        )
        completed[i]._cluster_vector = result.cluster_vector
    return completed


def build_ticket_flagged(
    assessment: TicketAssessment,
    *,
    detections: Sequence[Detection] | None = None,
    cluster: ClusterInfo | None = None,
    new_indicators: Iterable[Indicator] | None = None,
) -> TicketFlagged | None:
    """The ``ticket-flagged`` payload for an assessment, or ``None`` when nothing was detected.

    ``detections`` defaults to the assessment's own; pass the full list when cluster or rate
    detections were added. ``new_indicators`` defaults to all indicators (a first flag).
    """
    all_detections = list(assessment.detections if detections is None else detections)
    if not all_detections:
        return None
    indicators = ordered(d.indicator for d in all_detections)
    return TicketFlagged(
        ticket_id=assessment.ticket_id,
        upstream_event_id=assessment.upstream_event_id,
        upstream_source=assessment.upstream_source,
        event_kind=assessment.event_kind,
        occurred_at=assessment.occurred_at,
        channel=assessment.channel,
        priority=assessment.priority,
        product=assessment.product,
        customer_id=assessment.customer_id,
        customer_segment=assessment.customer_segment,
        customer_vulnerable=assessment.customer_vulnerable,
        agent_id=assessment.agent_id,
        tags=assessment.tags,
        redacted_subject=assessment.redacted_subject,
        redacted_summary=assessment.redacted_summary,
        indicators=all_detections,
        new_indicators=indicators if new_indicators is None else ordered(new_indicators),
        data_classification=assessment.data_classification,
        financial_amount=assessment.financial_amount,
        risk_flag=assessment.risk_flag,
        cluster=cluster,
        rule_pack_version=assessment.rule_pack_version,
    )


def flagged_event(
    payload: TicketFlagged, *, cause_event_id: str, time: datetime
) -> TicketFlaggedEvent:
    """Envelope for a flag; the id is derived from the causing event and the flagged ticket, so
    a re-delivered input yields the same id (and a surge re-flag of an earlier ticket gets its
    own id)."""
    return TicketFlaggedEvent(
        id=derive_event_id(cause_event_id, f"intake/flag/{payload.ticket_id}"),
        source=INTAKE_SOURCE,
        time=time,
        subject=payload.ticket_id,
        correlationid=payload.ticket_id,
        causationid=cause_event_id,
        data=payload,
    )


@dataclass(frozen=True, slots=True)
class IntakeDecision:
    """What the handler must persist and publish for one event."""

    assessment: TicketAssessment
    detections: list[Detection]
    cluster: ClusterAssignment | None
    """``None`` for a ticket that takes no part in clustering (not a problem report)."""
    rate: RateObservation | None
    follow_up: FollowUpDecision
    flagged: TicketFlagged | None
    reflag_ticket_ids: tuple[str, ...]

    @property
    def known_indicators_after(self) -> list[Indicator]:
        """The ticket's known indicators to store once ``flagged`` (if any) is published."""
        return self.follow_up.all_indicators if self.flagged else []


def decide_ticket(
    event: TicketEvent,
    rule_pack: RulePack,
    *,
    clusters: ClusterIndex,
    rates: RateBaselines,
    known_ticket: bool = False,
    known_indicators: Iterable[Indicator] = (),
    known_risk_flag_level: int | None = None,
    config: AssessmentConfig = DEFAULT_ASSESSMENT_CONFIG,
    assessment: TicketAssessment | None = None,
) -> IntakeDecision:
    """Assess one event and update ``clusters`` and ``rates`` in place (explicitly passed state).

    ``known_ticket`` says intake has seen the ticket before (the caller remembers tickets); only
    new tickets count towards rate baselines. A problem report (an assessment with a cluster
    vector) joins or starts a similar-report cluster; ``reflag_ticket_ids`` lists earlier
    tickets of a cluster whose surge this event started: flag each with
    :func:`reflag_for_surge` from its stored assessment. Pass ``assessment`` when
    :func:`assess_ticket` and :func:`complete_assessments` already ran for ``event`` (the
    service assesses while decoding, so that rejected input is dead-lettered there, and
    completes per batch); without it, both run here.
    """
    if assessment is None:
        [assessment] = complete_assessments(
            [assess_ticket(event, rule_pack, config)], config.semantic
        )
    is_new_ticket = not known_ticket and assessment.ticket_id not in clusters.ticket_clusters
    assignment = assign_to_cluster(
        clusters,
        ticket_id=assessment.ticket_id,
        customer_id=assessment.customer_id,
        occurred_at=assessment.occurred_at,
        product=assessment.product,
        vector=assessment.cluster_vector,
        config=config.clusters,
    )
    detections = list(assessment.detections)
    if assignment is not None and assignment.surge is not None:
        detections.append(assignment.surge)
    rate: RateObservation | None = None
    if is_new_ticket:
        rate = observe_ticket(
            rates,
            product=assessment.product,
            channel=assessment.channel,
            occurred_at=assessment.occurred_at,
            config=config.rates,
        )
        unusual = rate.detection()
        if unusual is not None:
            detections.append(unusual)

    follow_up = decide_follow_up(
        (d.indicator for d in detections),
        known_indicators,
        current_risk_flag_level=assessment.risk_flag.level if assessment.risk_flag else None,
        known_risk_flag_level=(
            None if known_risk_flag_level is None else RiskLevel(known_risk_flag_level)
        ),
    )
    flagged = (
        build_ticket_flagged(
            assessment,
            detections=detections,
            cluster=assignment.info if assignment else None,
            new_indicators=follow_up.new_indicators,
        )
        if follow_up.emit
        else None
    )
    return IntakeDecision(
        assessment=assessment,
        detections=detections,
        cluster=assignment,
        rate=rate,
        follow_up=follow_up,
        flagged=flagged,
        reflag_ticket_ids=assignment.tickets_to_flag if assignment else (),
    )


def reflag_for_surge(
    earlier: TicketAssessment,
    surge: ClusterAssignment,
    *,
    known_indicators: Iterable[Indicator] = (),
) -> TicketFlagged | None:
    """Flag an earlier member of the cluster ``surge`` has just made surge; ``None`` if it is
    already so flagged (or the cluster does not surge)."""
    known = set(known_indicators)
    if Indicator.MULTIPLE_SIMILAR_REPORTS in known or surge.surge is None:
        return None
    detections = [*earlier.detections, surge.surge]
    follow_up = decide_follow_up((d.indicator for d in detections), known)
    return build_ticket_flagged(
        earlier, detections=detections, cluster=surge.info, new_indicators=follow_up.new_indicators
    )


def remembered_assessment(
    previous: TicketAssessment | None, current: TicketAssessment
) -> TicketAssessment:
    """The assessment to keep for a ticket after ``current``: its latest fields, with every
    single-ticket detection seen on any of its events (earliest evidence first), so a surge
    that flags the ticket later still carries what its first message said."""
    if previous is None:
        return current
    seen: dict[tuple[Indicator, str], Detection] = {}
    for detection in (*previous.detections, *current.detections):
        seen.setdefault((detection.indicator, detection.rule_id), detection)
    kinds = set(previous.data_classification) | set(current.data_classification)
    return current.model_copy(
        update={
            "detections": list(seen.values()),
            "data_classification": [kind for kind in PersonalDataKind if kind in kinds],
            "financial_amount": max(
                (a for a in (previous.financial_amount, current.financial_amount) if a is not None),
                default=None,
            ),
        }
    )
