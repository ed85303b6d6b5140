"""Offline classification: upstream ticket events in, each ticket's final risk out, no broker.

This is the whole pipeline of the services run in memory, in event-time order, with the same
pure domain functions the services call: intake's :func:`~riskrelay.intake.domain.decide_ticket`
(redaction, rules, clusters, surges, rates, follow-ups) and
:func:`~riskrelay.intake.domain.reflag_for_surge`, then the classifier's
:func:`~riskrelay.classifier.domain.classify` on every ``ticket-flagged`` payload intake would
publish. The state the services keep in PostgreSQL (cluster index, rate baselines, ticket
memories, risk states) lives in one :class:`OfflineRun` instead.

Events are processed sorted by (event time, input position), so the outcome does not depend on
how the file happens to be ordered and ties are broken the same way every time. A repeated
upstream event id is processed once, as the services do. Nothing reads a clock: every time
comes from the events, so the same input always gives the same output.

Results are per ticket and *final*: a ticket whose cluster surges after it arrived is reported
with the flag and the risk it ends up with, which is what an operator replaying last month's
tickets against a new policy or rule pack wants to compare.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from riskrelay.classifier.domain import RiskState, classify, risk_id_for
from riskrelay.classifier.policy import RiskPolicy
from riskrelay.intake.clustering import ClusterIndex
from riskrelay.intake.domain import (
    DEFAULT_ASSESSMENT_CONFIG,
    AssessmentConfig,
    TicketAssessment,
    decide_ticket,
    reflag_for_surge,
    remembered_assessment,
)
from riskrelay.intake.errors import IntakeRejection
from riskrelay.intake.followups import ordered
from riskrelay.intake.patterns import RateBaselines
from riskrelay.intake.rules import RulePack
from riskrelay.shared.events import Indicator, TicketEvent, TicketFlagged
from riskrelay.shared.kafka import describe_error

ProgressCallback = Callable[[int], None]


# ---------------------------------------------------------------------------------------------
# Input
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InputLine:
    """One non-blank input line: a valid event, or the reason it is not one."""

    line_number: int
    event: TicketEvent | None = None
    error: str | None = None


def parse_lines(lines: Iterable[str | bytes]) -> list[InputLine]:
    """Validate JSONL against the upstream contract; blank lines are skipped, numbers kept."""
    parsed: list[InputLine] = []
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                parsed.append(InputLine(number, error=f"not UTF-8: {error.reason}"))
                continue
        text = raw.strip()
        if not text:
            continue
        try:
            event = TicketEvent.model_validate_json(text)
        except ValidationError as error:
            parsed.append(InputLine(number, error=describe_error(error)))
            continue
        parsed.append(InputLine(number, event=event))
    return parsed


# ---------------------------------------------------------------------------------------------
# State and results
# ---------------------------------------------------------------------------------------------


@dataclass
class _TicketMemory:
    """What intake remembers of a ticket between its events (the service's ticket row)."""

    assessment: TicketAssessment
    known_indicators: list[Indicator] = field(default_factory=list)
    risk_flag_level: int | None = None
    risk_id: str | None = None


@dataclass
class OfflineRun:
    """All state of one offline run; mutated by :meth:`process`, read by :meth:`outcome`."""

    rule_pack: RulePack
    policy: RiskPolicy
    config: AssessmentConfig = DEFAULT_ASSESSMENT_CONFIG
    clusters: ClusterIndex = field(default_factory=ClusterIndex)
    rates: RateBaselines = field(default_factory=RateBaselines)
    tickets: dict[str, _TicketMemory] = field(default_factory=dict)
    risks: dict[str, RiskState] = field(default_factory=dict)
    seen_event_ids: dict[str, int] = field(default_factory=dict)
    flags_published: int = 0

    def process(self, event: TicketEvent) -> None:
        """Run one event through intake and every resulting flag through the classifier.

        Raises :class:`~riskrelay.intake.errors.IntakeRejection` for input intake refuses
        (the service dead-letters it); state is then unchanged.
        """
        ticket_id = event.data.ticket_id
        memory = self.tickets.get(ticket_id)
        decision = decide_ticket(
            event,
            self.rule_pack,
            clusters=self.clusters,
            rates=self.rates,
            known_indicators=memory.known_indicators if memory else (),
            known_risk_flag_level=memory.risk_flag_level if memory else None,
            config=self.config,
        )
        assessment = remembered_assessment(
            memory.assessment if memory else None, decision.assessment
        )
        if memory is None:
            memory = self.tickets[ticket_id] = _TicketMemory(assessment=assessment)
        else:
            memory.assessment = assessment
        if decision.assessment.risk_flag is not None:
            # The highest level the agent ever set, as the service remembers it: a lowered
            # flag followed by a raise back to an earlier level is not news downstream.
            memory.risk_flag_level = max(
                int(decision.assessment.risk_flag.level), memory.risk_flag_level or 0
            )
        if decision.flagged is not None:
            memory.known_indicators = decision.known_indicators_after
            self._classify(memory, decision.flagged, event)
        for earlier_id in decision.reflag_ticket_ids:
            earlier = self.tickets.get(earlier_id)
            if earlier is None:  # a member intake never assessed here cannot be re-flagged
                continue
            reflag = reflag_for_surge(
                earlier.assessment,
                decision.cluster.info,
                known_indicators=earlier.known_indicators,
                config=self.config.clusters,
            )
            if reflag is not None:
                earlier.known_indicators = ordered(
                    [*earlier.known_indicators, Indicator.MULTIPLE_SIMILAR_REPORTS]
                )
                self._classify(earlier, reflag, event)

    def _classify(self, memory: _TicketMemory, flagged: TicketFlagged, cause: TicketEvent) -> None:
        risk_id = risk_id_for(flagged)
        outcome = classify(flagged, self.risks.get(risk_id), self.policy, cause.time)
        self.risks[risk_id] = outcome.state
        memory.risk_id = risk_id
        self.flags_published += 1

    def outcome(self, ticket_id: str) -> TicketOutcome:
        """The ticket's final state (after everything processed so far)."""
        memory = self.tickets.get(ticket_id)
        if memory is None or memory.risk_id is None:
            return TicketOutcome(
                ticket_id=ticket_id,
                flagged=False,
                level=None,
                category=None,
                risk_id=None,
                indicators=[],
                explanation=f"no risk indicator detected (rule pack {self.rule_pack.version})",
            )
        risk = self.risks[memory.risk_id]
        return TicketOutcome(
            ticket_id=ticket_id,
            flagged=True,
            level=int(risk.level),
            category=risk.category.value,
            risk_id=risk.risk_id,
            indicators=[indicator.value for indicator in memory.known_indicators],
            explanation=_risk_explanation(risk, self.rule_pack.version),
        )


@dataclass(frozen=True, slots=True)
class TicketOutcome:
    """A ticket's final risk as the pipeline decided it."""

    ticket_id: str
    flagged: bool
    level: int | None
    category: str | None
    risk_id: str | None
    indicators: list[str]
    explanation: str

    def as_json(self) -> dict[str, Any]:
        return {
            "ticket_id": self.ticket_id,
            "flagged": self.flagged,
            "level": self.level,
            "category": self.category,
            "risk_id": self.risk_id,
            "indicators": self.indicators,
            "explanation": self.explanation,
        }


def _risk_explanation(risk: RiskState, rule_pack_version: str) -> str:
    decisive = [c for c in risk.rules_fired if c.decisive]
    others = [c.rule_id for c in risk.rules_fired if not c.decisive]
    reasons = "; ".join(f"{c.rule_id}: {c.description.strip().rstrip('.')}" for c in decisive)
    detections = ", ".join(sorted({f"{d.indicator.value}:{d.rule_id}" for d in risk.detections}))
    parts = [
        f"{risk.level.label} (level {int(risk.level)}), {risk.category.value}",
        f"decided by {reasons}" if reasons else "no decisive rule",
    ]
    if others:
        parts.append("also fired: " + ", ".join(others))
    parts.append(f"detections: {detections}")
    parts.append(
        f"risk of {risk.ticket_count} ticket(s) from {risk.distinct_customers} customer(s)"
        + (", cluster surging" if risk.surging else "")
    )
    parts.append(f"policy {risk.policy_version}, rule pack {rule_pack_version}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# Whole runs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineResult:
    """The output for one input line: the ticket's final outcome, or an error."""

    line_number: int
    event_id: str | None
    outcome: TicketOutcome | None
    error: str | None = None
    duplicate_of_line: int | None = None

    def as_json(self) -> dict[str, Any]:
        if self.outcome is None:
            row: dict[str, Any] = {"line": self.line_number}
            if self.event_id is not None:
                row["event_id"] = self.event_id
            row["error"] = self.error
            return row
        row = {"line": self.line_number, "event_id": self.event_id, **self.outcome.as_json()}
        if self.duplicate_of_line is not None:
            row["duplicate_of_line"] = self.duplicate_of_line
        return row

    def to_json_line(self) -> str:
        return json.dumps(self.as_json(), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class OfflineResult:
    lines: list[LineResult]
    run: OfflineRun

    @property
    def error_count(self) -> int:
        return sum(1 for line in self.lines if line.error is not None)


def run_offline(
    inputs: Sequence[InputLine],
    rule_pack: RulePack,
    policy: RiskPolicy,
    *,
    config: AssessmentConfig = DEFAULT_ASSESSMENT_CONFIG,
    on_progress: ProgressCallback | None = None,
) -> OfflineResult:
    """Process every valid event in event-time order; results come back in input order."""
    run = OfflineRun(rule_pack=rule_pack, policy=policy, config=config)
    valid = [item for item in inputs if item.event is not None]
    order = sorted(
        range(len(valid)),
        key=lambda position: (_event_time(valid[position]), position),
    )
    rejected: dict[int, str] = {}
    duplicates: dict[int, int] = {}
    for done, position in enumerate(order, start=1):
        item = valid[position]
        event = item.event
        assert event is not None
        first_line = run.seen_event_ids.get(event.id)
        if first_line is not None:
            duplicates[item.line_number] = first_line
        else:
            try:
                run.process(event)
            except IntakeRejection as error:
                rejected[item.line_number] = f"rejected by intake: {error}"
            else:
                run.seen_event_ids[event.id] = item.line_number
        if on_progress is not None:
            on_progress(done)

    results: list[LineResult] = []
    for item in inputs:
        if item.event is None:
            results.append(LineResult(item.line_number, None, None, error=item.error))
        elif item.line_number in rejected:
            results.append(
                LineResult(item.line_number, item.event.id, None, error=rejected[item.line_number])
            )
        else:
            results.append(
                LineResult(
                    item.line_number,
                    item.event.id,
                    run.outcome(item.event.data.ticket_id),
                    duplicate_of_line=duplicates.get(item.line_number),
                )
            )
    return OfflineResult(results, run)


def _event_time(item: InputLine) -> float:
    assert item.event is not None
    return item.event.time.timestamp()
