"""Surges through intake's own step with the bundled models on the real sentence encoder: a
paraphrased incident surges as one cluster, a busy day of everyday requests never does (even with
the incident inside it, which still does), and a replay in other batches gives the same clusters."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from riskrelay.intake.clustering import product_key
from riskrelay.intake.domain import AssessmentConfig
from riskrelay.intake.rules import RulePack
from riskrelay.intake.semantic.detector import SemanticDetector
from riskrelay.intake.service import AssessedTicket, Intake, MemoryIntakeRepository, intake_step
from riskrelay.shared.events import Indicator, TicketEvent, TicketFlaggedEvent

pytestmark = pytest.mark.unit

CLINC = Path(__file__).resolve().parents[3] / "datasets" / "clinc150" / "train.jsonl"
START = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)  # event time only: nothing here reads a clock
PRODUCT = "Online Store"
EXPOSURE = json.loads((Path(__file__).parent / "samples" / "surge_reports.json").read_text())[
    "data_exposure"
]


@pytest.fixture(scope="module")
def intake(rule_pack: RulePack, semantic_detector: SemanticDetector) -> Intake:
    return Intake(rule_pack, AssessmentConfig(semantic=semantic_detector))


def ticket(ticket_id: str, text: str, at: datetime, customer: str) -> TicketEvent:
    return TicketEvent.model_validate(
        {
            "specversion": "1.0",
            "id": f"evt-{ticket_id}",
            "source": "test://helpdesk",
            "type": "riskrelay.ticket.created.v1",
            "time": at,
            "subject": ticket_id,
            "data": {
                "ticket_id": ticket_id,
                "subject": "",
                "description": text,
                "channel": "chat",
                "customer": {"id": customer, "segment": "consumer"},
                "tags": [],
                "product": PRODUCT,
                "priority": "normal",
            },
        }
    )


def incident(start: datetime) -> list[TicketEvent]:
    return [
        ticket(f"X-{n}", text, start + timedelta(minutes=5 * n), f"XC-{n}")
        for n, text in enumerate(EXPOSURE)
    ]


def everyday_requests(count: int, every: timedelta) -> list[TicketEvent]:
    """CLINC150 training requests of every everyday intent (the two risk intents left out),
    each from its own customer."""
    rows = [json.loads(line) for line in CLINC.read_text().splitlines() if line.strip()]
    everyday = [r for r in rows if r["intent"] not in {"report_fraud", "report_lost_card"}]
    picked = random.Random(7).sample(everyday, count)
    return [
        ticket(f"D-{n}", row["text"], START + n * every, f"DC-{n}") for n, row in enumerate(picked)
    ]


async def run(
    intake: Intake, events: Sequence[TicketEvent], batch_size: int = 50
) -> tuple[MemoryIntakeRepository, list[TicketFlaggedEvent]]:
    ordered = sorted(events, key=lambda e: (e.time, e.id))
    repository = MemoryIntakeRepository()
    flags: list[TicketFlaggedEvent] = []
    for start in range(0, len(ordered), batch_size):
        batch = [AssessedTicket(e, intake.assess(e)) for e in ordered[start : start + batch_size]]
        result = await intake_step(intake, repository, batch)
        await repository.save(result.changes)
        flags += result.flags
    return repository, flags


def similar_reports(flags: Sequence[TicketFlaggedEvent]) -> set[str]:
    return {
        flag.data.ticket_id
        for flag in flags
        if Indicator.MULTIPLE_SIMILAR_REPORTS in flag.data.new_indicators
    }


def clusters(repository: MemoryIntakeRepository) -> dict[str, frozenset[str]]:
    index = repository.cluster_index(product_key(PRODUCT)).index
    return {
        cluster_id: frozenset(m.ticket_id for m in cluster.members)
        for cluster_id, cluster in index.clusters.items()
    }


async def test_six_customers_reporting_one_data_exposure_in_six_wordings_are_one_surge(
    intake: Intake,
) -> None:
    repository, flags = await run(intake, incident(START))
    assert list(clusters(repository).values()) == [frozenset(f"X-{n}" for n in range(6))]
    assert similar_reports(flags) == {f"X-{n}" for n in range(6)}
    surging = {flag.data.cluster.cluster_id for flag in flags if flag.data.cluster}
    assert len(surging) == 1


async def test_a_busy_day_of_routine_requests_is_no_surge_while_an_incident_in_it_is(
    intake: Intake,
) -> None:
    # 1,800 everyday requests at 300 an hour, six hours, all on one product; then the same day
    # with the data exposure reported by six customers in the fourth hour.
    day = everyday_requests(1_800, timedelta(seconds=12))
    repository, flags = await run(intake, day)
    assert similar_reports(flags) == set()
    index = repository.cluster_index(product_key(PRODUCT)).index
    assert not any(cluster.surging for cluster in index.clusters.values())
    problems = sum(cluster.size for cluster in index.clusters.values())
    assert problems < 0.05 * len(day), "routine requests do not reach the clusters"

    _, flags = await run(intake, [*day, *incident(START + timedelta(hours=3, minutes=10))])
    assert similar_reports(flags) == {f"X-{n}" for n in range(6)}


async def test_a_replay_in_other_batches_gives_the_same_clusters_and_flags(
    intake: Intake,
) -> None:
    stream = [
        *everyday_requests(300, timedelta(seconds=12)),
        *incident(START + timedelta(minutes=20)),
    ]
    runs = []
    for batch_size in (50, 7):
        repository, flags = await run(intake, stream, batch_size)
        runs.append(
            (
                clusters(repository),
                sorted((f.id, f.data.ticket_id, tuple(f.data.new_indicators)) for f in flags),
            )
        )
    assert runs[0] == runs[1]
    assert frozenset(f"X-{n}" for n in range(6)) in runs[0][0].values()
