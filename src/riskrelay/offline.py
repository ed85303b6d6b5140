"""Offline classification: upstream ticket events in, each ticket's final risk out, no broker.

This runs the services' own application steps in memory: intake's
:func:`~riskrelay.intake.service.intake_step` (clusters, surges and their re-flags, rates,
follow-ups) over each batch of assessed events, then the classifier's
:func:`~riskrelay.classifier.service.classify_step` over the ``ticket-flagged`` events that
batch produced. What the services keep in PostgreSQL (cluster indexes, rate baselines, ticket
memories, risk states) lives in the in-memory repositories of one :class:`OfflineRun`; nothing
else of the decision path is written here, so ``riskrelay classify`` and ``make eval`` measure
the services' code.

Events are processed sorted by (event time, input position), so the outcome does not depend on
how the file happens to be ordered and ties are broken the same way every time, in batches the
size of a consumer's default batch (pruning idle clusters runs per batch, as in the service).
A repeated upstream event id is processed once, as the services do. Nothing reads a clock:
every time comes from the events, so the same input always gives the same output.

Results are per ticket and *final*: a ticket whose cluster surges after it arrived is reported
with the flag and the risk it ends up with, which is what an operator replaying last month's
tickets against a new policy or rule pack wants to compare.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from riskrelay.classifier.domain import RiskState, risk_id_for
from riskrelay.classifier.policy import RiskPolicy
from riskrelay.classifier.service import classify_step
from riskrelay.intake.errors import IntakeRejection
from riskrelay.intake.service import AssessedTicket, Intake, MemoryIntakeRepository, intake_step
from riskrelay.shared.events import Detection, TicketEvent
from riskrelay.shared.kafka import describe_error
from riskrelay.shared.settings import KafkaSettings

ProgressCallback = Callable[[int], None]

BATCH_EVENTS = KafkaSettings().batch_max_records
"""Events per step: the most a service's consumer reads in one batch by default."""


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
class OfflineRun:
    """All state of one offline run; changed by :meth:`process`, read by :meth:`outcome`."""

    intake: Intake
    policy: RiskPolicy
    tickets: MemoryIntakeRepository = field(default_factory=MemoryIntakeRepository)
    risks: dict[str, RiskState] = field(default_factory=dict)
    ticket_risks: dict[str, str] = field(default_factory=dict)
    """Ticket id -> the risk of its latest flag."""
    seen_event_ids: dict[str, int] = field(default_factory=dict)
    """Upstream event id -> the input line it was processed from."""
    flags_published: int = 0

    async def process(self, batch: Sequence[AssessedTicket]) -> None:
        """One batch of new, assessed events (event-time order) through intake's step, then the
        flags it publishes through the classifier's step, as the two services would."""
        flagged = await intake_step(self.intake, self.tickets, batch)
        await self.tickets.save(flagged.changes)
        classified = classify_step(self.policy, self.risks, flagged.flags)
        self.risks.update(classified.changed)
        for flag in flagged.flags:
            self.ticket_risks[flag.data.ticket_id] = risk_id_for(flag.data)
        self.flags_published += len(flagged.flags)

    def outcome(self, ticket_id: str) -> TicketOutcome:
        """The ticket's final state (after everything processed so far)."""
        memory = self.tickets.memories.get(ticket_id)
        risk_id = self.ticket_risks.get(ticket_id)
        english = memory.assessment.english if memory else True
        if memory is None or risk_id is None:
            return TicketOutcome(
                ticket_id=ticket_id,
                flagged=False,
                level=None,
                category=None,
                risk_id=None,
                indicators=[],
                explanation=f"no risk indicator detected (rule pack {self.rule_pack_version})",
                english=english,
            )
        risk = self.risks[risk_id]
        return TicketOutcome(
            ticket_id=ticket_id,
            flagged=True,
            level=int(risk.level),
            category=risk.category.value,
            risk_id=risk.risk_id,
            indicators=[indicator.value for indicator in memory.known_indicators],
            explanation=_risk_explanation(risk, self.rule_pack_version),
            detections=tuple(memory.assessment.detections),
            english=english,
        )

    @property
    def rule_pack_version(self) -> str:
        return self.intake.rule_pack.version


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
    detections: tuple[Detection, ...] = ()
    """The ticket's own detections (rules and models), each with its evidence."""
    english: bool = True

    def as_json(self, *, explain: bool = False) -> dict[str, Any]:
        row: dict[str, Any] = {
            "ticket_id": self.ticket_id,
            "flagged": self.flagged,
            "level": self.level,
            "category": self.category,
            "risk_id": self.risk_id,
            "indicators": self.indicators,
            "explanation": self.explanation,
        }
        if not self.english:
            row["note"] = ENGLISH_ONLY_NOTE
        if explain:
            row["detections"] = [
                detection.model_dump(mode="json", exclude_none=True)
                for detection in self.detections
            ]
        return row


ENGLISH_ONLY_NOTE = (
    "the text does not read as English: the indicator models are English-only, the rules ran"
)


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

    def as_json(self, *, explain: bool = False) -> dict[str, Any]:
        if self.outcome is None:
            row: dict[str, Any] = {"line": self.line_number}
            if self.event_id is not None:
                row["event_id"] = self.event_id
            row["error"] = self.error
            return row
        row = {
            "line": self.line_number,
            "event_id": self.event_id,
            **self.outcome.as_json(explain=explain),
        }
        if self.duplicate_of_line is not None:
            row["duplicate_of_line"] = self.duplicate_of_line
        return row

    def to_json_line(self, *, explain: bool = False) -> str:
        return json.dumps(self.as_json(explain=explain), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class OfflineResult:
    lines: list[LineResult]
    run: OfflineRun

    @property
    def error_count(self) -> int:
        return sum(1 for line in self.lines if line.error is not None)


def run_offline(
    inputs: Sequence[InputLine],
    intake: Intake,
    policy: RiskPolicy,
    *,
    on_progress: ProgressCallback | None = None,
) -> OfflineResult:
    """Process every valid event in event-time order; results come back in input order.

    Runs the steps in an event loop of its own, so call it where none is running (a thread).
    """
    run = OfflineRun(intake=intake, policy=policy)
    valid = [item for item in inputs if item.event is not None]
    order = sorted(
        range(len(valid)),
        key=lambda position: (_event_time(valid[position]), position),
    )
    rejected: dict[int, str] = {}
    duplicates: dict[int, int] = {}

    async def process_all() -> None:
        batch: list[AssessedTicket] = []
        for done, position in enumerate(order, start=1):
            item = valid[position]
            event = item.event
            assert event is not None
            first_line = run.seen_event_ids.get(event.id)
            if first_line is not None:
                duplicates[item.line_number] = first_line
            else:
                try:
                    batch.append(AssessedTicket(event, intake.assess(event)))
                except IntakeRejection as error:
                    rejected[item.line_number] = f"rejected by intake: {error}"
                else:
                    run.seen_event_ids[event.id] = item.line_number
            if len(batch) == BATCH_EVENTS or done == len(order):
                await run.process(batch)
                batch = []
                if on_progress is not None:
                    on_progress(done)

    asyncio.run(process_all())

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
