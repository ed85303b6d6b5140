"""The sample-traffic generator: deterministic, valid, labelled, realistic enough to test on."""

from __future__ import annotations

import itertools
import json
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import phonenumbers
import pytest
from stdnum import iban as stdnum_iban
from stdnum import luhn

from riskrelay.cli.sample_traffic import (
    HARMLESS,
    INCIDENTS,
    RISKY,
    Label,
    generate,
    generate_labelled,
    generate_recent,
    generate_recent_labelled,
    iban_check_digits,
    luhn_check_digit,
    write_jsonl,
    write_labels_jsonl,
)
from riskrelay.shared.events import (
    Indicator,
    RiskLevel,
    TicketEvent,
    TicketEventKind,
    decode_event,
)

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)  # a Monday morning


@pytest.fixture(scope="module")
def labelled() -> list[tuple[TicketEvent, Label]]:
    return generate_labelled(3000, seed=11, start=START, flag_ratio=0.15)


@pytest.fixture(scope="module")
def texts(labelled: list[tuple[TicketEvent, Label]]) -> list[str]:
    out = []
    for event, _ in labelled:
        out += [event.data.subject, event.data.description]
        if event.data.comment is not None:
            out.append(event.data.comment.body)
    return out


def test_same_seed_same_bytes_other_seed_other_events() -> None:
    first = [e.to_json_bytes() for e in generate(400, seed=3, start=START)]
    again = [e.to_json_bytes() for e in generate(400, seed=3, start=START)]
    other = [e.to_json_bytes() for e in generate(400, seed=4, start=START)]
    assert first == again
    assert first != other


def test_a_longer_run_starts_with_the_shorter_one() -> None:
    short = generate(300, seed=5, start=START)
    long = generate(900, seed=5, start=START)
    assert [e.id for e in long[:300]] == [e.id for e in short]


def test_count_order_ids_and_validity(labelled: list[tuple[TicketEvent, Label]]) -> None:
    events = [event for event, _ in labelled]
    assert len(events) == 3000
    assert [e.time for e in events] == sorted(e.time for e in events)
    assert events[0].time == START
    assert len({e.id for e in events}) == len(events)
    for event in events:
        # Through the wire format and the decoder every consumer uses.
        decoded = decode_event(event.to_json_bytes())
        assert decoded == event
        assert event.subject == event.data.ticket_id
        assert event.source in {
            "zendesk://acme",
            "freshdesk://shop",
            "zammad://helpdesk.example",
            "zendesk://carelink",
        }


def test_edge_arguments() -> None:
    assert generate(0, seed=1, start=START) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        generate(10, seed=1, start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="flag_ratio"):
        generate(10, seed=1, start=START, flag_ratio=1.5)
    with pytest.raises(ValueError, match="burst_every"):
        generate(10, seed=1, start=START, burst_every=0)


def test_event_kinds_and_follow_ups(labelled: list[tuple[TicketEvent, Label]]) -> None:
    kinds = Counter(event.kind for event, _ in labelled)
    assert kinds[TicketEventKind.CREATED] > 0.55 * len(labelled)
    assert kinds[TicketEventKind.COMMENTED] > 0
    assert kinds[TicketEventKind.UPDATED] > 0
    created_at: dict[str, datetime] = {}
    for event, label in labelled:
        if event.kind is TicketEventKind.CREATED:
            assert event.data.ticket_id not in created_at
            assert not label.follow_up
            created_at[event.data.ticket_id] = event.time
        else:
            # A follow-up comes after its ticket's creation, which is therefore in the prefix.
            assert created_at[event.data.ticket_id] < event.time
            assert label.follow_up
        if event.kind is TicketEventKind.COMMENTED:
            assert event.data.comment is not None
        else:
            assert event.data.comment is None


@pytest.mark.parametrize("flag_ratio", [0.0, 0.1, 0.3, 1.0])
def test_share_of_risky_single_tickets_follows_flag_ratio(flag_ratio: float) -> None:
    pairs = generate_labelled(2500, seed=21, start=START, flag_ratio=flag_ratio, burst_every=None)
    created = [label for event, label in pairs if event.kind is TicketEventKind.CREATED]
    share = sum(label.risky for label in created) / len(created)
    assert share == pytest.approx(flag_ratio, abs=0.03)
    assert all(label.incident_id is None for _, label in pairs)


def test_labels_are_consistent(labelled: list[tuple[TicketEvent, Label]]) -> None:
    for event, label in labelled:
        assert (label.level is None) == (not label.indicators)
        assert (label.category is None) == (not label.indicators)
        has_flag = event.data.risk_flag is not None
        assert has_flag == (Indicator.AGENT_RISK_FLAG in label.indicators)
        if event.data.risk_flag is not None:
            assert label.level is not None
            assert event.data.risk_flag.level <= label.level
            assert event.data.agent_id is not None
        if event.data.customer.vulnerable and label.level is not None and not label.incident_id:
            scenario = next(s for s in RISKY if s.key == label.scenario)
            assert scenario.level is not None
            assert label.level >= min(5, scenario.level + 1)


def test_every_generated_indicator_kind_appears() -> None:
    pairs = generate_labelled(3000, seed=2, start=START, flag_ratio=0.5, burst_every=30)
    seen = set().union(*(label.indicators for _, label in pairs))
    expected = set(Indicator) - {Indicator.UNUSUAL_PATTERN}  # a rate signal, not ticket text
    assert expected <= seen
    levels = Counter(label.level for _, label in pairs)
    assert {2, 3, 4, 5} <= set(levels)
    assert levels[None] > 0


def test_agent_risk_flags_are_set(labelled: list[tuple[TicketEvent, Label]]) -> None:
    flagged = [e for e, _ in labelled if e.data.risk_flag is not None]
    assert flagged
    assert all(e.kind is not TicketEventKind.CREATED for e in flagged)
    burst_flags = [
        e for e, lbl in labelled if e.data.risk_flag is not None and lbl.incident_id is not None
    ]
    assert any(
        (e.data.risk_flag.affected_customers or 0) >= 5 for e in burst_flags if e.data.risk_flag
    )


def test_bursts_are_many_customers_different_words_within_minutes(
    labelled: list[tuple[TicketEvent, Label]],
) -> None:
    incidents: dict[str, list[TicketEvent]] = defaultdict(list)
    for event, label in labelled:
        if label.incident_id and event.kind is TicketEventKind.CREATED:
            assert Indicator.MULTIPLE_SIMILAR_REPORTS in label.indicators
            assert label.level is not None
            assert label.level >= 4
            incidents[label.incident_id].append(event)
    complete = [reports for reports in incidents.values() if len(reports) >= 5]
    assert len(complete) >= 5
    for reports in incidents.values():
        customers = {r.data.customer.id for r in reports}
        assert len(customers) == len(reports)
        assert len({r.data.product for r in reports}) == 1
        assert len({r.source for r in reports}) == 1
        assert reports[-1].time - reports[0].time <= timedelta(minutes=30)
    for reports in complete:
        # Different words: texts are drawn without replacement while the family has enough.
        subjects = [r.data.subject for r in reports]
        family = next(i for i in INCIDENTS if reports and i.product_id == reports[0].data.product)
        assert len(set(subjects)) >= min(len(subjects), len(family.texts)) - 1


def test_text_is_varied(labelled: list[tuple[TicketEvent, Label]]) -> None:
    created = [e for e, _ in labelled if e.kind is TicketEventKind.CREATED]
    descriptions = Counter(e.data.description for e in created)
    assert len(descriptions) > 0.9 * len(created)
    subjects = Counter(e.data.subject for e in created)
    assert len(subjects) > 150
    assert subjects.most_common(1)[0][1] < 0.03 * len(created)
    assert {e.data.channel for e in created} == {"email", "chat", "phone", "web", "social"}
    segments = {e.data.customer.segment for e in created}
    assert segments == {"consumer", "smb", "enterprise", "public_sector"}
    assert any(e.data.customer.vulnerable for e in created)
    assert sum(len(s.texts) for s in HARMLESS) >= 50
    assert sum(len(s.texts) for s in RISKY) >= 40


def test_event_times_are_spaced_like_a_helpdesk(labelled: list[tuple[TicketEvent, Label]]) -> None:
    singles = [
        e.time
        for e, lbl in labelled
        if e.kind is TicketEventKind.CREATED and lbl.incident_id is None
    ]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(singles)]
    assert min(gaps) >= 1
    assert 20 <= statistics.median(gaps) <= 300


_CARD = re.compile(r"\b(?:\d[ -]?){14,15}\d\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?\b")


def test_personal_data_is_realistic(texts: list[str]) -> None:
    blob = "\n".join(texts)
    # German IBANs hold 16 digits in a row; take IBANs out before looking for card numbers.
    cards = [re.sub(r"\D", "", match) for match in _CARD.findall(_IBAN.sub(" ", blob))]
    assert len(cards) >= 10
    assert all(luhn.is_valid(card) for card in cards)
    ibans = [match.replace(" ", "") for match in _IBAN.findall(blob)]
    assert len(ibans) >= 10
    assert all(stdnum_iban.is_valid(value) for value in ibans)
    phones = [m.number for text in texts for m in phonenumbers.PhoneNumberMatcher(text, "US")]
    assert len(phones) >= 50  # the matcher's default leniency accepts only valid numbers
    emails = re.findall(r"[^\s<>():,]+@(?:mail\.)?example\.(?:com|org|net)", blob)
    assert len(emails) >= 50
    assert all(email.isascii() for email in emails)  # "García" is written "garcia" in addresses
    assert re.search(r"\b(?:192\.0\.2|198\.51\.100|203\.0\.113)\.\d+\b", blob)


def test_check_digit_helpers_agree_with_python_stdnum() -> None:
    for partial in ("7992739871", "411111111111111", "37144963539843"):
        assert luhn.is_valid(partial + luhn_check_digit(partial))
    assert iban_check_digits("GB", "WEST12345698765432") == "82"  # GB82 WEST 1234 5698 7654 32
    assert stdnum_iban.is_valid(
        "DE" + iban_check_digits("DE", "370400440532013000") + "370400440532013000"
    )


def test_write_jsonl_round_trips(tmp_path: Path, labelled: list[tuple[TicketEvent, Label]]) -> None:
    events = [event for event, _ in labelled[:200]]
    path = tmp_path / "events.jsonl"
    assert write_jsonl(events, path) == 200
    lines = path.read_bytes().splitlines()
    assert [decode_event(line) for line in lines] == events

    labels_path = tmp_path / "labels.jsonl"
    assert write_labels_jsonl(labelled[:200], labels_path) == 200
    rows = [json.loads(line) for line in labels_path.read_text().splitlines()]
    assert [row["event_id"] for row in rows] == [e.id for e in events]
    assert rows[0].keys() >= {"ticket_id", "indicators", "level", "incident_id", "scenario"}


# ---------------------------------------------------------------------------------------------
# Recent traffic (the demo's)
# ---------------------------------------------------------------------------------------------

NOW = datetime(2026, 12, 1, 15, 30, tzinfo=UTC)  # a Tuesday afternoon


@pytest.fixture(scope="module")
def recent() -> list[tuple[TicketEvent, Label]]:
    return generate_recent_labelled(500, seed=7, now=NOW)


def test_recent_traffic_spans_the_last_two_weeks_and_ends_just_before_now(
    recent: list[tuple[TicketEvent, Label]],
) -> None:
    times = [event.time for event, _ in recent]
    assert len(recent) == 500
    assert times == sorted(times)
    assert len({event.id for event, _ in recent}) == 500
    assert max(times) == NOW - timedelta(minutes=2)
    assert min(times).date() >= (NOW - timedelta(days=14)).date()
    days = {t.date() for t in times}
    weekdays = {
        (NOW - timedelta(days=ago)).date()
        for ago in range(1, 15)
        if (NOW - timedelta(days=ago)).weekday() < 5
    }
    assert weekdays <= days, "every weekday of the last two weeks has traffic"
    # The week and the month of `now` have traffic, and so has the month before.
    assert any(t.isocalendar()[:2] == NOW.isocalendar()[:2] for t in times)
    assert any((t.year, t.month) == (2026, 12) for t in times)
    assert any((t.year, t.month) == (2026, 11) for t in times)


def test_recent_traffic_surges_in_the_last_hours(recent: list[tuple[TicketEvent, Label]]) -> None:
    last_hours = [(e, label) for e, label in recent if e.time >= NOW - timedelta(hours=6)]
    yesterday = [
        e for e, _ in recent if NOW - timedelta(hours=30) <= e.time < NOW - timedelta(hours=24)
    ]
    assert len(last_hours) >= 0.25 * len(recent)
    assert len(last_hours) > 3 * len(yesterday)
    incidents = {label.incident_id for _, label in last_hours if label.incident_id}
    assert len(incidents) >= 2, "bursts of similar reports in the surge"
    levels = {label.level for _, label in last_hours if label.risky}
    assert RiskLevel.CRITICAL in levels or RiskLevel.HIGH in levels
    created = [e for e, _ in last_hours if e.kind is TicketEventKind.CREATED]
    assert len(created) > 0.5 * len(last_hours)


def test_recent_traffic_is_deterministic_per_seed_and_now() -> None:
    first = [e.to_json_bytes() for e in generate_recent(200, seed=3, now=NOW)]
    again = [e.to_json_bytes() for e in generate_recent(200, seed=3, now=NOW)]
    later = generate_recent(200, seed=3, now=NOW + timedelta(hours=5))
    assert first == again
    # Another run later gets ids of its own, so consumers do not drop it as a repeat.
    assert not {e.id for e in later} & {decode_event(raw).id for raw in first}
    assert max(e.time for e in later) == NOW + timedelta(hours=5) - timedelta(minutes=2)


def test_recent_traffic_is_valid_and_follow_ups_come_after_their_ticket(
    recent: list[tuple[TicketEvent, Label]],
) -> None:
    created_at: dict[str, datetime] = {}
    for event, label in recent:
        assert decode_event(event.to_json_bytes()) == event
        if event.kind is TicketEventKind.CREATED:
            assert event.data.ticket_id not in created_at
            created_at[event.data.ticket_id] = event.time
        else:
            assert created_at[event.data.ticket_id] < event.time
            assert label.follow_up


def test_recent_traffic_arguments() -> None:
    assert generate_recent(0, seed=1, now=NOW) == []
    with pytest.raises(ValueError, match="now must be timezone-aware"):
        generate_recent(10, seed=1, now=datetime(2026, 12, 1))
    with pytest.raises(ValueError, match="days"):
        generate_recent(10, seed=1, now=NOW, days=0)
    with pytest.raises(ValueError, match="surge_share"):
        generate_recent_labelled(10, seed=1, now=NOW, surge_share=2.0)
    one_day = generate_recent(60, seed=1, now=NOW, days=1)
    assert min(e.time for e in one_day).date() == (NOW - timedelta(days=1)).date()
