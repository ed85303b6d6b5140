"""One decision path: the same stream through the running intake service (real broker, real
PostgreSQL) and through `riskrelay classify` flags the same tickets, with the same indicators,
in the same clusters.

The stream comes in two waves, so that the service decides it in several batches and the surge
of the second wave re-flags members it must read back from PostgreSQL; the offline run reads
the whole file at once.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import typer
from typer.testing import CliRunner

from riskrelay.classifier.domain import risk_id_for
from riskrelay.classifier.policy import default_policy
from riskrelay.cli.classify import classify_command
from riskrelay.intake.app import create_app
from riskrelay.intake.service import Intake
from riskrelay.intake.settings import IntakeSettings
from riskrelay.offline import OfflineResult, parse_lines, run_offline
from riskrelay.shared.events import TICKET_EVENT_TYPES, TicketEventKind, TicketFlaggedEvent
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import eventually, header, produce, read_topic, running

pytestmark = pytest.mark.integration

CHECKOUT = [  # wordings the problem gate reads as problem reports: only those cluster
    "The checkout page crashes when I press pay",
    "Payment page crashed again at checkout when paying",
    "app checkout crash on pay button",
    "The site crashes at checkout every time I click the pay button",
    "Pressing pay at checkout crashes the whole page",
    "checkout crashes as soon as I hit the pay button, please fix",
]


def ticket_event(
    start: datetime,
    minutes: float,
    ticket: str,
    description: str,
    *,
    product: str = "Web Shop",
    customer: str | None = None,
    comment: str | None = None,
    channel: str = "email",
    event_id: str | None = None,
) -> dict[str, Any]:
    kind = TicketEventKind.COMMENTED if comment else TicketEventKind.CREATED
    return {
        "specversion": "1.0",
        "id": event_id or f"up-{ticket}-{minutes:g}",
        "source": "zendesk://acme",
        "type": TICKET_EVENT_TYPES[kind],
        "time": (start + timedelta(minutes=minutes)).isoformat(),
        "subject": ticket,
        "data": {
            "ticket_id": ticket,
            "subject": "Help needed",
            "description": description,
            "channel": channel,
            "customer": {"id": customer or f"C-{ticket}", "segment": "smb"},
            "product": product,
            "priority": "normal",
            "comment": {"author_type": "customer", "body": comment} if comment else None,
        },
    }


def stream(start: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Two waves of upstream events dated from ``start``: flagged and harmless tickets, a
    repeated event, one intake refuses, and a cluster that surges in the second wave."""
    data_concern = ticket_event(
        start,
        0,
        "T0",
        "I can see another customer's invoices and home address in my account page.",
        product="Billing Portal",
    )
    first = [
        data_concern,
        ticket_event(start, 1, "T1", "How do I change my delivery address?"),
        ticket_event(start, 2, "T2", "Just asking how to export my data to CSV."),
        *[
            ticket_event(start, 3 + n, f"T{3 + n}", text, product="Checkout")
            for n, text in enumerate(CHECKOUT[:4])
        ],
        ticket_event(start, 7, "T7", "Where is my parcel?"),
        ticket_event(
            start,
            8,
            "T8",
            "We will report you to the data protection authority and our lawyer is preparing "
            "a lawsuit",
            product="Billing Portal",
        ),
        # The outage's words, another product: never the Checkout cluster.
        ticket_event(start, 9, "T9", CHECKOUT[0], product="Web Shop"),
        ticket_event(start, 10, "T10", "hello", channel="carrier pigeon"),
        data_concern,
    ]
    second = [
        ticket_event(start, 11, "T11", CHECKOUT[4], product="Checkout"),
        ticket_event(
            start,
            20,
            "T1",
            "Update",
            comment="Also, someone logged into my account without my permission and changed "
            "my password.",
        ),
        ticket_event(
            start,
            21,
            "T0",
            "Update",
            product="Billing Portal",
            comment="As I said, I can see another customer's invoices and home address.",
        ),
        ticket_event(start, 22, "T4", "Update", product="Checkout", comment="Any news?"),
        ticket_event(start, 25, "T12", CHECKOUT[5], product="Checkout"),
    ]
    return first, second


SURGE = {f"T{n}" for n in (3, 4, 5, 6, 11, 12)}
EXPECTED_FLAGS = {  # at least these (the learned models may add their own)
    "T0": {"data_concern"},
    "T1": {"security_issue"},
    "T8": {"compliance_question"},
    **{ticket: {"multiple_similar_reports"} for ticket in SURGE},
}


def records(events: list[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    return [(e["data"]["ticket_id"].encode(), json.dumps(e).encode()) for e in events]


def classify_cli(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """`riskrelay classify FILE` (it runs its own event loop, so call it off this one)."""
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Keeps `classify` a sub-command, as in the `riskrelay` app."""

    app.command("classify")(classify_command)
    result = CliRunner().invoke(app, ["classify", str(path)])
    return result.exit_code, [json.loads(line) for line in result.stdout.splitlines()]


def offline_run(path: Path) -> OfflineResult:
    inputs = parse_lines(path.read_bytes().splitlines())
    return run_offline(inputs, Intake.from_settings(IntakeSettings()), default_policy())


def offline_clusters(result: OfflineResult) -> set[frozenset[str]]:
    return {
        frozenset(member.ticket_id for member in cluster.members)
        for cached in result.run.tickets.products.values()
        for cluster in cached.index.clusters.values()
    }


def tickets_by_risk(risk_of: dict[str, str]) -> set[frozenset[str]]:
    groups: dict[str, set[str]] = {}
    for ticket, risk_id in risk_of.items():
        groups.setdefault(risk_id, set()).add(ticket)
    return {frozenset(tickets) for tickets in groups.values()}


async def service_clusters(connection: asyncpg.Connection, schema: str) -> set[frozenset[str]]:
    rows = await connection.fetch(
        "SELECT array_agg(ticket_id) AS members"
        f' FROM "{schema}".cluster_members GROUP BY cluster_id'
    )
    return {frozenset(row["members"]) for row in rows}


async def test_the_service_and_riskrelay_classify_flag_the_same_tickets(
    kafka_settings: KafkaSettings, database_settings: DatabaseSettings, tmp_path: Path
) -> None:
    # Any date works: only the offsets between events matter (the clock is passed in).
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    first, second = stream(start)
    path = tmp_path / "stream.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in [*first, *second]))

    exit_code, rows = await asyncio.to_thread(classify_cli, path)
    offline = await asyncio.to_thread(offline_run, path)
    assert exit_code == 1  # the refused line
    offline_flags = {
        row["ticket_id"]: (set(row["indicators"]), row["risk_id"])
        for row in rows
        if row.get("flagged")
    }
    flags_published = offline.run.flags_published
    refused = [row for row in rows if "error" in row]
    assert len(refused) == 1
    assert "channel" in refused[0]["error"]

    topic = f"{kafka_settings.topic_prefix}ticket-events"
    schema = database_settings.schema_name
    connection = await asyncpg.connect(database_settings.url.get_secret_value())
    try:
        async with running(
            create_app(IntakeSettings(kafka=kafka_settings, database=database_settings))
        ):
            await produce(kafka_settings.bootstrap, topic, records(first))

            async def first_wave_decided() -> bool:
                count = await connection.fetchval(f'SELECT count(*) FROM "{schema}".tickets')
                return bool(count == 10)  # T0-T9: T10 is refused, T0's repeat is dropped

            await eventually(first_wave_decided)
            await produce(kafka_settings.bootstrap, topic, records(second))
            published = await read_topic(
                kafka_settings.bootstrap,
                f"{kafka_settings.topic_prefix}ticket-flagged",
                expected=flags_published,
                timeout=60,
                settle=3,
            )
            dead = await read_topic(
                kafka_settings.bootstrap, f"{topic}.dlq", expected=1, timeout=10, settle=1
            )
        clusters = await service_clusters(connection, schema)
    finally:
        await connection.close()

    service_indicators: dict[str, set[str]] = {}
    latest_risk: dict[str, str] = {}
    for record in published:  # one ticket's flags share a key, so they come in order
        flag = TicketFlaggedEvent.model_validate_json(record.value)
        service_indicators.setdefault(flag.data.ticket_id, set()).update(
            str(indicator) for indicator in flag.data.new_indicators
        )
        latest_risk[flag.data.ticket_id] = risk_id_for(flag.data)

    assert service_indicators == {ticket: found for ticket, (found, _) in offline_flags.items()}
    assert set(service_indicators) == set(EXPECTED_FLAGS)
    for ticket, indicators in EXPECTED_FLAGS.items():
        assert indicators <= service_indicators[ticket], ticket
    similar = {t for t, found in service_indicators.items() if "multiple_similar_reports" in found}
    assert similar == SURGE
    assert len(published) == flags_published, "the service published other flags"
    # A cluster's flags become one risk, named after the ticket that founded it. Tickets on
    # different partitions reach the service in no fixed order, so its founder may differ from
    # the file's first; the same tickets sharing one risk is what both paths must agree on.
    offline_risk = {ticket: risk_id for ticket, (_, risk_id) in offline_flags.items()}
    assert latest_risk.keys() == offline_risk.keys()
    assert tickets_by_risk(latest_risk) == tickets_by_risk(offline_risk)
    assert clusters == offline_clusters(offline)
    assert frozenset(SURGE) in clusters
    assert len(dead) == 1
    assert "channel" in (header(dead[0], "dlq_error") or "")
