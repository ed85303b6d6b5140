"""Intake's application step over the in-memory repository: what it flags, what it asks the
repository for, what it hands back to persist, and that batch boundaries do not change it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from riskrelay.intake.domain import AssessmentConfig
from riskrelay.intake.rules import RulePack
from riskrelay.intake.semantic.detector import SemanticDetector
from riskrelay.intake.service import (
    AssessedTicket,
    Intake,
    IntakeStepResult,
    MemoryIntakeRepository,
    intake_step,
)
from riskrelay.intake.settings import IntakeSettings
from riskrelay.intake.store import BatchChanges, TicketMemory
from riskrelay.shared.events import Indicator, TicketEvent, TicketEventKind

pytestmark = pytest.mark.unit

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

MakeEvent = Callable[..., TicketEvent]
TopicDetector = Callable[[Mapping[str, str]], SemanticDetector]

OUTAGE = [
    "The checkout page crashes when I press pay",
    "Checkout crashes every time I try to pay",
    "Payment page crashed again at checkout when paying",
    "app checkout crash on pay button",
    "When I click pay the checkout crashes",
]


class RecordingRepository(MemoryIntakeRepository):
    """The in-memory repository, noting which ticket memories the step asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[set[str]] = []

    async def tickets(self, ticket_ids: Collection[str]) -> dict[str, TicketMemory]:
        self.asked.append(set(ticket_ids))
        return await super().tickets(ticket_ids)


@pytest.fixture
def intake(rule_pack: RulePack, topic_detector: TopicDetector) -> Intake:
    # What the step does with problem reports, whatever the trained models say of these texts:
    # every text naming the checkout is a report of one problem, every other text is routine.
    detector = topic_detector({"checkout": "checkout outage"})
    return Intake(rule_pack, AssessmentConfig(semantic=detector))


def assessed(intake: Intake, events: Sequence[TicketEvent]) -> list[AssessedTicket]:
    return [AssessedTicket(event, intake.assess(event)) for event in events]


async def run(
    intake: Intake, repository: MemoryIntakeRepository, events: Sequence[TicketEvent]
) -> IntakeStepResult:
    result = await intake_step(intake, repository, assessed(intake, events))
    await repository.save(result.changes)
    return result


def outage_reports(make_event: MakeEvent) -> list[TicketEvent]:
    return [
        make_event(
            text,
            subject="Checkout",
            ticket_id=f"T-{n}",
            customer_id=f"C-{n}",
            product="Checkout",
            time=START + timedelta(minutes=5 * n),
        )
        for n, text in enumerate(OUTAGE, start=1)
    ]


async def test_a_surge_re_flags_the_earlier_members_right_after_the_ticket_that_started_it(
    make_event: MakeEvent, intake: Intake
) -> None:
    question = make_event("How do I change my delivery address?", ticket_id="Q-1")
    reports = outage_reports(make_event)
    result = await run(intake, MemoryIntakeRepository(), [question, *reports])

    assert [flag.data.ticket_id for flag in result.flags] == ["T-5", "T-1", "T-2", "T-3", "T-4"]
    assert all(
        Indicator.MULTIPLE_SIMILAR_REPORTS in flag.data.new_indicators for flag in result.flags
    )
    clusters = [flag.data.cluster for flag in result.flags]
    assert len({cluster.cluster_id for cluster in clusters if cluster}) == 1
    assert all(cluster and cluster.surging for cluster in clusters)
    # Every re-flag is caused by the event that started the surge, and has an id of its own.
    assert {flag.causationid for flag in result.flags} == {reports[-1].id}
    assert len({flag.id for flag in result.flags}) == 5
    assert result.surges == 1
    remembered = {memory.ticket_id: memory for memory in result.changes.tickets}
    assert set(remembered) == {"Q-1", "T-1", "T-2", "T-3", "T-4", "T-5"}
    assert remembered["Q-1"].known_indicators == []
    assert all(
        remembered[f"T-{n}"].known_indicators == [Indicator.MULTIPLE_SIMILAR_REPORTS]
        for n in range(1, 6)
    )


async def test_earlier_members_outside_the_batch_are_asked_for_once_when_their_cluster_surges(
    make_event: MakeEvent, intake: Intake
) -> None:
    reports = outage_reports(make_event)
    repository = RecordingRepository()

    first = await run(intake, repository, reports[:4])
    assert first.flags == []
    assert repository.asked == [{"T-1", "T-2", "T-3", "T-4"}]  # the batch's tickets, once

    repository.asked.clear()
    second = await run(intake, repository, reports[4:])
    assert repository.asked == [{"T-5"}, {"T-1", "T-2", "T-3", "T-4"}]
    assert [flag.data.ticket_id for flag in second.flags] == ["T-5", "T-1", "T-2", "T-3", "T-4"]
    # The re-flagged members are saved with the indicator, so a later event does not repeat it.
    assert {memory.ticket_id for memory in second.changes.tickets} == {
        "T-1",
        "T-2",
        "T-3",
        "T-4",
        "T-5",
    }
    follow_up = make_event(
        "Still crashing at checkout when I pay",
        subject="Checkout",
        ticket_id="T-2",
        customer_id="C-2",
        product="Checkout",
        kind=TicketEventKind.COMMENTED,
        comment="Any news?",
        time=START + timedelta(minutes=40),
    )
    assert (await run(intake, repository, [follow_up])).flags == []


async def test_the_changes_are_what_the_service_persists(
    make_event: MakeEvent, intake: Intake
) -> None:
    events = [
        make_event("How do I change my delivery address?", ticket_id="Q-1", time=START),
        make_event(
            "We will report you to the data protection authority and our lawyer is preparing "
            "a lawsuit",
            ticket_id="L-1",
            channel="chat",
            time=START + timedelta(minutes=70),
        ),
    ]
    events.append(make_event(OUTAGE[0], ticket_id="T-1", time=START + timedelta(minutes=75)))
    changes: BatchChanges = (await run(intake, MemoryIntakeRepository(), events)).changes

    assert dict(changes.counts) == {
        (START, "email", "Mobile App", False): 1,
        (START + timedelta(hours=1), "chat", "Mobile App", True): 1,
        (START + timedelta(hours=1), "email", "Mobile App", False): 1,
    }
    assert set(changes.cached) == {"mobile app"}
    # Only the problem report clusters: the question and the legal threat stay outside.
    [cluster_id] = changes.started_cluster_ids
    assert [member.ticket_id for _, _, member in changes.added_members] == ["T-1"]
    assert changes.changed_clusters == {"mobile app": {cluster_id}}
    [topic_id] = changes.changed_topics["mobile app"]
    assert changes.cached["mobile app"].index.topics[topic_id].reports == 1
    rate_keys = {"mobile app\x1femail", "mobile app\x1fchat"}
    assert set(changes.rates) == set(changes.rate_products) == rate_keys
    assert [memory.ticket_id for memory in changes.tickets] == ["L-1", "Q-1", "T-1"]  # sorted
    assert [memory.cluster_id for memory in changes.tickets] == [None, None, cluster_id]
    assert not changes.outgoing  # the caller adds them: it knows the topic


async def test_batch_boundaries_do_not_change_the_decisions(
    make_event: MakeEvent, intake: Intake
) -> None:
    reports = outage_reports(make_event)
    events = [
        make_event("How do I change my delivery address?", ticket_id="Q-1", time=START),
        *reports[:3],
        make_event("Where is my parcel?", ticket_id="Q-2", time=START + timedelta(minutes=16)),
        make_event(
            "Where is my parcel?",
            ticket_id="Q-2",
            kind=TicketEventKind.COMMENTED,
            comment="Someone logged into my account without my permission and changed my password.",
            time=START + timedelta(minutes=17),
        ),
        *reports[3:],
    ]

    async def flags(batch_size: int) -> list[tuple[str, str, tuple[Indicator, ...], str | None]]:
        repository = MemoryIntakeRepository()
        found = []
        for start in range(0, len(events), batch_size):
            result = await run(intake, repository, events[start : start + batch_size])
            found += [
                (
                    flag.id,
                    flag.data.ticket_id,
                    tuple(flag.data.new_indicators),
                    flag.data.cluster.cluster_id if flag.data.cluster else None,
                )
                for flag in result.flags
            ]
        return found

    whole = await flags(len(events))
    assert {ticket for _, ticket, _, _ in whole} == {"T-1", "T-2", "T-3", "T-4", "T-5", "Q-2"}
    assert await flags(1) == whole
    assert await flags(3) == whole


def test_the_service_defaults_are_the_offline_defaults(rule_pack: RulePack) -> None:
    # riskrelay classify and make eval build Intake.from_settings with the rule pack they loaded;
    # the service builds it from its settings alone. With default settings the two decide alike.
    service = Intake.from_settings(IntakeSettings())
    offline = Intake.from_settings(IntakeSettings(), rule_pack=rule_pack)
    assert service.config.semantic is not None
    assert offline.config.semantic is not None
    assert service.config.semantic.models.version == offline.config.semantic.models.version
    assert service.config.clusters == offline.config.clusters
    assert service.config.rates == offline.config.rates
    assert service.cluster_retention_seconds == offline.cluster_retention_seconds
    assert service.rule_pack.version == offline.rule_pack.version
