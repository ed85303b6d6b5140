"""The classifier's application step: a batch of ticket-flagged events in, the risk-classified
events and the risk states they change out.

:func:`classify_step` is the one decision path of the classifier. The service's Kafka handler
runs it over each batch inside a transaction (risk states read from PostgreSQL, see
:mod:`riskrelay.classifier.handlers`); ``riskrelay classify`` and ``make eval`` run it over
what intake's step flagged, with the risk states in memory. Decisions are made by
:func:`riskrelay.classifier.domain.classify`; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from riskrelay.classifier.domain import (
    ClassificationOutcome,
    RiskState,
    classify,
    redundant_publications,
    risk_id_for,
)
from riskrelay.classifier.policy import RiskPolicy
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import RiskClassifiedEvent, TicketFlaggedEvent

SOURCE = "riskrelay/classifier"


class RiskStates(Protocol):
    """What :func:`classify_step` reads: the stored state of a risk, if it has one."""

    def get(self, risk_id: str, /) -> RiskState | None: ...


@dataclass(frozen=True, slots=True)
class ClassifierStepResult:
    classified: list[RiskClassifiedEvent]
    """To publish, in decision order."""
    changed: dict[str, RiskState]
    """The new state of every risk the batch touched, to persist."""


def classify_step(
    policy: RiskPolicy, states: RiskStates, events: Sequence[TicketFlaggedEvent]
) -> ClassifierStepResult:
    """Fold a batch of new ticket-flagged events, in order, into their risks.

    A batch publishes less than its events one by one would: a ticket's join is left out when
    a later event of the batch lists it (:func:`~.domain.redundant_publications`).
    """
    changed: dict[str, RiskState] = {}
    outcomes: list[ClassificationOutcome] = []
    for event in events:
        risk_id = risk_id_for(event.data)
        state = changed.get(risk_id)
        if state is None:
            state = states.get(risk_id)
        outcome = classify(event.data, state, policy, event.time)
        changed[risk_id] = outcome.state
        outcomes.append(outcome)
    redundant = redundant_publications(outcomes)
    classified: list[RiskClassifiedEvent] = []
    for position, (event, outcome) in enumerate(zip(events, outcomes, strict=True)):
        if outcome.event_step is None or position in redundant:
            continue
        published = classified_event(
            outcome, derive_event_id(event.id, outcome.event_step), event.id, event.time
        )
        if published is not None:
            classified.append(published)
    return ClassifierStepResult(classified, changed)


def classified_event(
    outcome: ClassificationOutcome, event_id: str, cause_id: str | None, time: datetime
) -> RiskClassifiedEvent | None:
    """The envelope of what ``outcome`` publishes (``None`` when it publishes nothing)."""
    if outcome.classified is None:
        return None
    risk_id = outcome.state.risk_id
    return RiskClassifiedEvent(
        id=event_id,
        source=SOURCE,
        time=time,
        subject=risk_id,
        correlationid=risk_id,
        causationid=cause_id,
        data=outcome.classified,
    )
