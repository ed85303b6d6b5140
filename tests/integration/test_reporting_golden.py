"""Golden files: a fixed event history gives exactly the expected weekly and monthly JSON, and
the HTML, Markdown and CSV renderings carry the same numbers.

The history (``tests/golden/reporting/history.jsonl``, written by ``build_history.py`` there) is
applied through :func:`riskrelay.reporting.ingest.apply_events`, the function the consumer calls
for every batch. To accept a deliberate change of the reports, run this module with
``RISKRELAY_UPDATE_GOLDEN=1`` and review the diff of the JSON files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from riskrelay.reporting import ingest
from riskrelay.reporting.generate import build_monthly, build_weekly
from riskrelay.reporting.periods import parse_month, parse_week
from riskrelay.reporting.render import render_csv, render_html, render_json, render_markdown
from riskrelay.shared.events import decode_event
from riskrelay.shared.migrations import migrate
from riskrelay.shared.settings import DatabaseSettings

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parents[1] / "golden" / "reporting"
WEEK, WEEKLY_NOW = "2026-W47", datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
MONTH, MONTHLY_NOW = "2026-11", datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def history() -> list[Any]:
    lines = (GOLDEN / "history.jsonl").read_text().splitlines()
    return [decode_event(json.dumps(json.loads(line)["event"])) for line in lines]


@pytest.fixture
async def connection(database_settings: DatabaseSettings) -> AsyncIterator[asyncpg.Connection]:
    url = database_settings.url.get_secret_value()
    await migrate(url, database_settings.schema_name, "riskrelay.reporting")
    connection = await asyncpg.connect(
        url, server_settings={"search_path": f'"{database_settings.schema_name}",public'}
    )
    try:
        yield connection
    finally:
        await connection.close()


async def apply(connection: asyncpg.Connection, events: list[Any]) -> int:
    async with connection.transaction():
        return await ingest.apply_events(connection, events)


def check_golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("RISKRELAY_UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    assert path.exists(), f"{path} is missing: run with RISKRELAY_UPDATE_GOLDEN=1 once"
    assert json.loads(actual) == json.loads(path.read_text()), f"{name} differs from golden"


def cell_after(html: str, row_marker: str, column: int) -> str:
    """The text of the ``column``-th cell of the first table row carrying ``row_marker``."""
    row = re.search(rf"<tr {row_marker}[^>]*>(.*?)</tr>", html, re.S)
    assert row, f"no row {row_marker}"
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    return re.sub(r"<[^>]+>", "", cells[column]).strip()


def kpi(html: str, name: str) -> str:
    found = re.search(rf'id="kpi-{name}"><b>([^<]*)</b>', html)
    assert found, f"no KPI {name}"
    return found.group(1)


async def test_weekly_and_monthly_reports_match_the_golden_files(
    connection: asyncpg.Connection,
) -> None:
    events = history()
    assert await apply(connection, events) == len(events)
    weekly = await build_weekly(connection, parse_week(WEEK), WEEKLY_NOW)
    monthly = await build_monthly(connection, parse_month(MONTH), MONTHLY_NOW)
    check_golden(f"weekly-{WEEK}.json", render_json(weekly))
    check_golden(f"monthly-{MONTH}.json", render_json(monthly))

    # The HTML shows the same numbers as the JSON.
    html = render_html(weekly)
    assert kpi(html, "flagged") == str(weekly.flagged_tickets.total) == "7"
    assert kpi(html, "new") == str(weekly.risks.total.new)
    assert kpi(html, "breached") == str(weekly.escalations_total.breached)
    assert kpi(html, "open") == str(weekly.open_risks.total)
    breakdown = weekly.flagged_tickets
    for dimension, items in [
        ("level", breakdown.by_level),
        ("category", breakdown.by_category),
        ("channel", breakdown.by_channel),
        ("product", breakdown.by_product),
    ]:
        for item in items:
            assert cell_after(html, f'data-count="{dimension}-{item.key}"', 1) == str(item.tickets)
    for row in weekly.escalations:
        assert cell_after(html, f'data-level="{row.level}"', 1) == str(row.steps)
        assert cell_after(html, f'data-level="{row.level}"', 5) == str(row.breached)
    for risk in weekly.open_risks.items:
        assert f'data-risk="{risk.risk_id}"' in html
    assert "<svg" in html
    assert "<script" not in html
    assert "@media print" in html

    html = render_html(monthly)
    assert kpi(html, "flagged") == str(monthly.flagged_tickets) == "10"
    assert kpi(html, "near-misses") == str(monthly.near_misses.total)
    assert kpi(html, "recurring") == str(monthly.recurring_issues.total)
    change = monthly.month_over_month
    for dimension, changes in [
        ("total", [change.total]),
        ("level", change.by_level),
        ("category", change.by_category),
    ]:
        for item in changes:
            marker = f'data-change="{dimension}-{item.key}"'
            assert cell_after(html, marker, 1) == str(item.current)
            assert cell_after(html, marker, 2) == str(item.previous)
            if item.rate_ratio is not None:
                assert cell_after(html, marker, 5).startswith(f"{item.rate_ratio:,.2f} (")
    for series in monthly.weekly_trend.by_level:
        marker = f'data-trend="level-{series.key}"'
        cells = [cell_after(html, marker, i + 1) for i in range(len(series.weeks))]
        assert [c.split(" ")[0] for c in cells] == [str(p.tickets) for p in series.weeks]
    for near in monthly.near_misses.items:
        assert f'data-risk="{near.risk_id}"' in html

    markdown = render_markdown(monthly)
    assert f"**{monthly.flagged_tickets}** risk-flagged tickets" in markdown
    assert "| R-login |" in markdown

    # Every number of the JSON is in the CSV.
    rows = list(csv.DictReader(io.StringIO(render_csv(weekly))))
    values = {(r["section"], r["item"], r["field"]): r["value"] for r in rows}
    assert values[("flagged_tickets", "", "total")] == "7"
    assert values[("flagged_tickets.by_channel", "email", "tickets")] == "4"
    assert values[("escalations", "4", "breached")] == "2"


async def row_counts(connection: asyncpg.Connection) -> dict[str, int]:
    names = await connection.fetch(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
    )
    return {
        row["tablename"]: await connection.fetchval(f'SELECT count(*) FROM "{row["tablename"]}"')
        for row in names
    }


async def test_replays_and_reordering_change_nothing(connection: asyncpg.Connection) -> None:
    events = history()
    await apply(connection, list(reversed(events)))
    first = render_json(await build_monthly(connection, parse_month(MONTH), MONTHLY_NOW))
    counts = await row_counts(connection)
    assert await apply(connection, events) == 0
    assert await apply(connection, events[::2]) == 0
    assert await row_counts(connection) == counts
    assert counts["flagged_tickets"] == 15
    assert counts["risk_classifications"] == 8
    second = render_json(await build_monthly(connection, parse_month(MONTH), MONTHLY_NOW))
    assert first == second
    # Applied in reverse order, the history still gives the golden report.
    assert json.loads(first) == json.loads((GOLDEN / f"monthly-{MONTH}.json").read_text())


async def test_a_period_without_activity_is_empty_and_one_before_the_data_has_no_data(
    connection: asyncpg.Connection,
) -> None:
    await apply(connection, history())
    weekly = await build_weekly(connection, parse_week("2026-W42"), WEEKLY_NOW)
    assert weekly.period.coverage == "complete"
    assert weekly.empty
    assert weekly.flagged_tickets.total == 0
    assert "this summary is empty" in weekly.notes[0]
    assert 'id="empty-notice"' in render_html(weekly)
    # Before the history's first event (10 October) there is no data, which is not "empty".
    before = await build_weekly(connection, parse_week("2026-W02"), WEEKLY_NOW)
    assert before.period.coverage == "no_data"
    assert before.notes == [
        "No data for 2026-W02: the first event the read model holds is at"
        " 2026-10-10T08:00:00+00:00."
    ]
    monthly_before = await build_monthly(connection, parse_month("2026-10"), MONTHLY_NOW)
    assert monthly_before.previous_period.coverage == "no_data"
    assert monthly_before.month_over_month.total.previous is None
    assert not monthly_before.month_over_month.total.tested
    monthly = await build_monthly(
        connection, parse_month("2027-03"), datetime(2027, 4, 1, tzinfo=UTC)
    )
    assert monthly.empty
    assert "this report is empty" in monthly.notes[0]
    assert monthly.month_over_month.total.rate_ratio is None
    assert "this report is empty" in render_markdown(monthly)
