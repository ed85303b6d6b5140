"""`riskrelay report weekly|monthly` against a reporting database holding the golden history."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from riskrelay.cli.report import report_app
from riskrelay.reporting import ingest
from riskrelay.shared.events import decode_event
from riskrelay.shared.migrations import migrate
from riskrelay.shared.settings import DatabaseSettings

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parents[1] / "golden" / "reporting"


async def load_history(url: str, schema: str) -> None:
    await migrate(url, schema, "riskrelay.reporting")
    connection = await asyncpg.connect(url, server_settings={"search_path": f'"{schema}",public'})
    try:
        lines = (GOLDEN / "history.jsonl").read_text().splitlines()
        events = [decode_event(json.dumps(json.loads(line)["event"])) for line in lines]
        async with connection.transaction():
            await ingest.apply_events(connection, events)
    finally:
        await connection.close()


@pytest.fixture
def database(database_settings: DatabaseSettings) -> list[str]:
    url = database_settings.url.get_secret_value()
    asyncio.run(load_history(url, database_settings.schema_name))
    return ["--database-url", url, "--schema", database_settings.schema_name]


def test_weekly_and_monthly_reports_are_written_in_every_format(
    database: list[str], tmp_path: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "weekly.json"
    result = runner.invoke(
        report_app,
        ["weekly", "--week", "2026-W47", "--format", "json", "-o", str(out),
         "--now", "2026-11-23T07:00:00", *database],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == json.loads((GOLDEN / "weekly-2026-W47.json").read_text())
    for fmt in ("html", "md", "csv"):
        target = tmp_path / f"monthly.{fmt}"
        result = runner.invoke(
            report_app,
            ["monthly", "--month", "2026-11", "--format", fmt, "-o", str(target),
             "--now", "2026-12-01T07:00:00", *database],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "R-login" in target.read_text()


def test_malformed_periods_exit_2_with_the_reason(database: list[str]) -> None:
    runner = CliRunner()
    result = runner.invoke(report_app, ["weekly", "--week", "2026-47", *database])
    assert result.exit_code == 2
    assert "YYYY-Www" in result.output
    result = runner.invoke(report_app, ["monthly", "--month", "2026-13", *database])
    assert result.exit_code == 2
    assert "01-12" in result.output
    result = runner.invoke(
        report_app, ["weekly", "--week", "2026-W47", "--format", "pdf", *database]
    )
    assert result.exit_code == 2


def test_a_schema_without_reporting_tables_is_a_clear_error(database: list[str]) -> None:
    runner = CliRunner()
    arguments = [*database[:2], "--schema", "no_such_schema"]
    result = runner.invoke(report_app, ["weekly", "--week", "2026-W47", *arguments])
    assert result.exit_code == 1
    assert "no reporting tables" in result.output
