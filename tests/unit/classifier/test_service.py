"""The classifier's application step: a batch folds into its risks in order, reads the states it
is given without changing them, and ends where the same events one batch each end."""

from __future__ import annotations

from typing import Any

import pytest

from riskrelay.classifier.domain import RiskState, risk_id_for
from riskrelay.classifier.policy import RiskPolicy
from riskrelay.classifier.service import SOURCE, classify_step
from riskrelay.shared.envelope import derive_event_id
from riskrelay.shared.events import RiskLevel, TicketFlaggedEvent

pytestmark = pytest.mark.unit


def envelope(
    build: Any, *rule_ids: str, ticket_id: str, minute: int, **fields: Any
) -> TicketFlaggedEvent:
    at = build.t0 + build.minutes(minute)
    flagged = build.flagged(*rule_ids, ticket_id=ticket_id, at=at, **fields)
    return TicketFlaggedEvent(
        id=derive_event_id(flagged.upstream_event_id, f"intake/flag/{ticket_id}"),
        source="riskrelay/intake",
        time=at,
        subject=ticket_id,
        data=flagged,
    )


def outage(build: Any) -> list[TicketFlaggedEvent]:
    """A cluster's tickets: two quiet reports, then a surge re-flag, then a data concern."""
    return [
        envelope(
            build, "severe_impact.outage", ticket_id="T-1", minute=0, cluster=build.cluster(1)
        ),
        envelope(
            build, "severe_impact.outage", ticket_id="T-2", minute=5, cluster=build.cluster(2)
        ),
        envelope(
            build,
            "multiple_similar_reports.surge",
            ticket_id="T-3",
            minute=10,
            cluster=build.cluster(5, surging=True),
        ),
        envelope(
            build,
            "data_concern.other_customer_data",
            ticket_id="T-4",
            minute=15,
            cluster=build.cluster(6, surging=True),
        ),
    ]


def test_a_batch_folds_its_events_into_one_risk_in_order(build: Any, policy: RiskPolicy) -> None:
    events = outage(build)
    result = classify_step(policy, {}, events)

    risk_id = risk_id_for(events[0].data)
    assert set(result.changed) == {risk_id}
    state = result.changed[risk_id]
    assert state.ticket_ids == ("T-1", "T-2", "T-3", "T-4")
    assert state.last_ticket_id == "T-4"
    assert result.classified, "a new risk is published"
    for published in result.classified:
        assert published.source == SOURCE
        assert published.subject == published.data.risk_id == risk_id
        assert published.causationid in {event.id for event in events}


def test_the_given_states_are_read_not_changed(build: Any, policy: RiskPolicy) -> None:
    events = outage(build)
    first = classify_step(policy, {}, events[:2]).changed
    stored: dict[str, RiskState] = dict(first)
    before = {key: state.model_copy(deep=True) for key, state in stored.items()}

    later = classify_step(policy, stored, events[2:]).changed

    assert stored == before
    (risk_id,) = later
    assert later[risk_id].ticket_ids == ("T-1", "T-2", "T-3", "T-4")
    assert later[risk_id].level >= stored[risk_id].level


def test_the_final_state_does_not_depend_on_the_batches(build: Any, policy: RiskPolicy) -> None:
    events = outage(build)
    whole = classify_step(policy, {}, events).changed

    states: dict[str, RiskState] = {}
    for event in events:
        states.update(classify_step(policy, states, [event]).changed)

    assert states == whole
    assert max(state.level for state in states.values()) >= RiskLevel(3)
