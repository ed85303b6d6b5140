"""`riskrelay report weekly|monthly`: render a report straight from the reporting database.

Reads the reporting service's read model (``--database-url`` / ``RISKRELAY_REPORTING_DATABASE_URL``
and ``--schema``); no broker needed. Registered in ``cli/main.py`` as
``app.add_typer(report_app, name="report")``.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import asyncpg
import typer
from rich.console import Console

from riskrelay.reporting.generate import Rendered, ReportKind, produce
from riskrelay.reporting.periods import Period, PeriodError, parse_month, parse_week
from riskrelay.reporting.render import ReportFormat

report_app = typer.Typer(
    help="Weekly Risk Summary and Monthly Risk Report from the reporting database.",
    no_args_is_help=True,
)
# soft_wrap: an error is one line whatever the width, so the address in it stays whole.
console = Console(stderr=True, soft_wrap=True)

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:15432/riskrelay"

DatabaseOption = Annotated[
    str,
    typer.Option(
        "--database-url",
        envvar=["RISKRELAY_REPORTING_DATABASE_URL", "RISKRELAY_REPORTING_DATABASE__URL"],
        help="PostgreSQL URL of the reporting database.",
        show_default=False,
    ),
]
SchemaOption = Annotated[
    str,
    typer.Option(
        "--schema",
        envvar=["RISKRELAY_REPORTING_SCHEMA", "RISKRELAY_REPORTING_DATABASE__SCHEMA_NAME"],
        help="Schema of the reporting service's tables.",
    ),
]
FormatOption = Annotated[
    ReportFormat, typer.Option("--format", "-f", help="json, html, md (Markdown) or csv.")
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write here (default: standard output).", dir_okay=False),
]
NowOption = Annotated[
    datetime | None,
    typer.Option(
        "--now",
        help="Generate as of this time (ISO 8601, UTC if no offset); default: now.",
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
    ),
]


def database_address(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL, without user or password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    return f"{host}:{parts.port or 5432}{parts.path or '/'}"


def database_error(url: str, error: BaseException) -> str:
    """One line saying which database failed and how."""
    where = database_address(url)
    if isinstance(error, OSError):
        # asyncpg's strerror repeats the address; the errno's own text says what happened.
        code = error.errno
        reason = os.strerror(code) if code and code > 0 else error.strerror or type(error).__name__
        return f"cannot reach the reporting database at {where} ({reason.lower()})"
    detail = " ".join(str(error).split()) or type(error).__name__
    return f"the reporting database at {where} refused the request: {detail}"


def _week(value: str) -> Period:
    try:
        return parse_week(value)
    except PeriodError as error:
        raise typer.BadParameter(str(error)) from error


def _month(value: str) -> Period:
    try:
        return parse_month(value)
    except PeriodError as error:
        raise typer.BadParameter(str(error)) from error


async def _produce(
    url: str, schema: str, kind: ReportKind, period: Period, fmt: ReportFormat, now: datetime
) -> Rendered:
    connection = await asyncpg.connect(
        url,
        server_settings={
            "search_path": f'"{schema}",public',
            "default_transaction_read_only": "on",
        },
    )
    try:
        found = await connection.fetchval(
            "SELECT to_regclass(format('%I.flagged_tickets', $1::text)) IS NOT NULL", schema
        )
        if not found:
            raise LookupError(
                f"schema {schema!r} has no reporting tables; start the reporting service once"
                " (it applies its migrations) or pass --schema"
            )
        return await produce(connection, kind, period, fmt, now)
    finally:
        await connection.close()


def _run(
    kind: ReportKind,
    period: Period,
    fmt: ReportFormat,
    output: Path | None,
    url: str,
    schema: str,
    now: datetime | None,
) -> None:
    if now is None:
        moment = datetime.now(UTC)
    elif now.tzinfo is None:
        moment = now.replace(tzinfo=UTC)
    else:
        moment = now.astimezone(UTC)
    try:
        with console.status(f"querying {kind} report {period.label}…"):
            rendered = asyncio.run(_produce(url, schema, kind, period, fmt, moment))
    except LookupError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from error
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        console.print(f"[red]error:[/] {database_error(url, error)}", highlight=False)
        raise typer.Exit(1) from error
    if output is None:
        sys.stdout.write(rendered.body)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(rendered.body, encoding="utf-8")
    state = "[yellow]empty[/]" if rendered.report.empty else "[green]ok[/]"
    where = str(output) if output else "standard output"
    console.print(
        f"{state} {rendered.report.title} ({fmt.value}) → {where} in {rendered.seconds:.2f} s"
    )
    for note in rendered.report.notes:
        console.print(f"  [dim]{note}[/]")


@report_app.command("weekly")
def weekly(
    week: Annotated[str, typer.Option("--week", "-w", help="ISO week, e.g. 2026-W47.")],
    fmt: FormatOption = ReportFormat.HTML,
    output: OutputOption = None,
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    schema: SchemaOption = "reporting",
    now: NowOption = None,
) -> None:
    """Weekly Risk Summary for one ISO week."""
    _run("weekly", _week(week), fmt, output, database_url, schema, now)


@report_app.command("monthly")
def monthly(
    month: Annotated[str, typer.Option("--month", "-m", help="Calendar month, e.g. 2026-11.")],
    fmt: FormatOption = ReportFormat.HTML,
    output: OutputOption = None,
    database_url: DatabaseOption = DEFAULT_DATABASE_URL,
    schema: SchemaOption = "reporting",
    now: NowOption = None,
) -> None:
    """Monthly Risk Report for one calendar month (compared with the month before)."""
    _run("monthly", _month(month), fmt, output, database_url, schema, now)
