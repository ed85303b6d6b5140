"""The `riskrelay` command."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from riskrelay.cli import kafka_tools
from riskrelay.cli.classify import classify_command
from riskrelay.cli.report import report_app
from riskrelay.cli.stack import SERVICES, Stack, StackConfig, stop_from_state

app = typer.Typer(
    help="riskrelay: catch customer-facing risk in support traffic and get it to the right people on time.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
dev_app = typer.Typer(help="The embedded development stack.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead-letter topics.", no_args_is_help=True)
sample_app = typer.Typer(help="Sample traffic.", no_args_is_help=True)
escalation_app = typer.Typer(
    help="Escalation plans (no broker or database needed).", no_args_is_help=True
)
app.add_typer(dev_app, name="dev")
app.add_typer(dlq_app, name="dlq")
app.add_typer(sample_app, name="sample")
app.add_typer(escalation_app, name="escalation")
app.command("classify")(classify_command)
app.add_typer(report_app, name="report")

console = Console()
errors = Console(stderr=True)

BootstrapOption = Annotated[
    str,
    typer.Option(
        "--bootstrap", "-b", envvar="RISKRELAY_KAFKA_BOOTSTRAP", help="Kafka bootstrap servers."
    ),
]
PrefixOption = Annotated[
    str, typer.Option("--topic-prefix", envvar="RISKRELAY_TOPIC_PREFIX", help="Topic name prefix.")
]
DataDirOption = Annotated[
    Path, typer.Option("--data-dir", help="Where the dev stack keeps data, logs and tokens.")
]


def _stack_config(
    data_dir: Path, kafka_port: int, pg_port: int, base_port: int | None
) -> StackConfig:
    ports = dict(SERVICES)
    if base_port is not None:
        ports = {name: base_port + i for i, name in enumerate(SERVICES)}
    return StackConfig(
        data_dir=data_dir, kafka_port=kafka_port, pg_port=pg_port, service_ports=ports
    )


def _print_stack(config: StackConfig, stack: Stack) -> None:
    table = Table(title="riskrelay dev stack", show_lines=False)
    table.add_column("component")
    table.add_column("address")
    table.add_column("docs / notes")
    table.add_row("kafka (tansu)", config.bootstrap, "in-memory; restart loses messages")
    table.add_row("postgresql", stack.postgres.url, str(stack.postgres.data_dir))
    for name, port in config.service_ports.items():
        base = f"http://{config.http_host}:{port}"
        notes = f"{base}/docs  {base}/docs/asyncapi"
        if name == "reporting":
            notes = f"{base}/dashboard  " + notes
        table.add_row(name, base, notes)
    table.add_row("tokens", str(config.tokens_file), "role -> bearer token")
    console.print(table)


@dev_app.command("up")
def dev_up(
    data_dir: DataDirOption = Path(".riskrelay"),
    kafka_port: Annotated[int, typer.Option(help="Broker port.")] = 19092,
    pg_port: Annotated[int, typer.Option(help="PostgreSQL port.")] = 15432,
    base_port: Annotated[
        int | None, typer.Option(help="First service HTTP port (default 8001..8005).")
    ] = None,
    sample: Annotated[
        int, typer.Option(help="Publish this many sample tickets once everything is ready.")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the sample traffic.")] = 7,
    exit_after: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (smoke runs).")
    ] = None,
) -> None:
    """Start broker, database and all five services; Ctrl-C (or `riskrelay dev down`) stops them."""
    config = _stack_config(data_dir, kafka_port, pg_port, base_port)
    if config.state_file.exists():
        errors.print(
            f"[red]a stack is already running (see {config.state_file}); run `riskrelay dev down` first[/]"
        )
        raise typer.Exit(1)
    stack = Stack(config)
    stopping = {"flag": False}

    def _stop(signum: int, frame: object) -> None:
        stopping["flag"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        with console.status("starting broker and PostgreSQL…"):
            stack.start_infrastructure()
        console.print(
            f"[green]✓[/] broker on {config.bootstrap}, PostgreSQL on 127.0.0.1:{pg_port}"
        )
        with console.status("starting services (migrations, topics, consumer groups)…"):
            stack.start_services()
        console.print("[green]✓[/] all five services answer /readyz")
        _print_stack(config, stack)
        if sample:
            _publish_sample(config.bootstrap, "", sample, seed)
        console.print("running; press Ctrl-C to stop")
        started = time.monotonic()
        while not stopping["flag"]:
            if exit_after is not None and time.monotonic() - started > exit_after:
                break
            for name, process in stack.services.items():
                if process.poll() is not None:
                    errors.print(
                        f"[red]{name} exited with code {process.returncode}; see {config.data_dir}/logs/{name}.log[/]"
                    )
                    stopping["flag"] = True
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except (RuntimeError, TimeoutError) as error:
        errors.print(f"[red]could not start the stack: {error}[/]")
        stack.stop()
        raise typer.Exit(1) from error
    finally:
        if stack.services or stack.broker.process:
            with console.status("stopping…"):
                stack.stop()
            console.print("stopped")


@dev_app.command("down")
def dev_down(data_dir: DataDirOption = Path(".riskrelay")) -> None:
    """Stop a stack started by `riskrelay dev up` in another terminal."""
    stopped = stop_from_state(StackConfig(data_dir=data_dir))
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def _publish_sample(bootstrap: str, prefix: str, count: int, seed: int) -> None:
    from riskrelay.cli.sample_traffic import generate

    events = generate(count, seed=seed, start=datetime.now(UTC).replace(microsecond=0))
    lines = [
        kafka_tools.ParsedLine(i, e.data.ticket_id.encode(), e.to_json_bytes())
        for i, e in enumerate(events, 1)
    ]
    _publish_with_progress(bootstrap, f"{prefix}ticket-events", lines)


def _publish_with_progress(bootstrap: str, topic: str, lines: list[kafka_tools.ParsedLine]) -> None:
    with Progress(
        TextColumn("publishing to {task.fields[topic]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("publish", total=len(lines), topic=topic)
        asyncio.run(
            kafka_tools.publish_lines(bootstrap, topic, lines, lambda n: progress.advance(task, n))
        )


@app.command()
def publish(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="Ticket events, one JSON object per line."
        ),
    ],
    bootstrap: BootstrapOption = "127.0.0.1:19092",
    topic_prefix: PrefixOption = "",
    send_invalid: Annotated[
        bool,
        typer.Option(help="Also send lines that fail validation (they will be dead-lettered)."),
    ] = False,
) -> None:
    """Publish upstream ticket events (the upstream contract) to `ticket-events`."""
    raw_lines = kafka_tools.read_jsonl(file)
    valid, invalid = kafka_tools.parse_ticket_lines(raw_lines)
    for item in invalid[:20]:
        errors.print(f"[yellow]line {item.line_number}:[/] {item.reason}")
    if len(invalid) > 20:
        errors.print(f"[yellow]… and {len(invalid) - 20} more invalid lines[/]")
    if send_invalid:
        valid += [
            kafka_tools.ParsedLine(i.line_number, None, raw_lines[i.line_number - 1].encode())
            for i in invalid
        ]
        valid.sort(key=lambda p: p.line_number)
    topic = f"{topic_prefix}ticket-events"
    if valid:
        _publish_with_progress(bootstrap, topic, valid)
    console.print(
        f"published {len(valid)} event(s) to {topic}; {len(invalid)} invalid line(s)"
        + (" sent anyway" if send_invalid else " skipped")
    )
    if invalid and not send_invalid:
        raise typer.Exit(1)


@app.command()
def tail(
    topic: Annotated[
        str, typer.Argument(help="Topic to follow, e.g. ticket-flagged or risk-classified.dlq.")
    ],
    bootstrap: BootstrapOption = "127.0.0.1:19092",
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest record.")
    ] = False,
    limit: Annotated[int | None, typer.Option(help="Stop after N records.")] = None,
) -> None:
    """Pretty-print events as they arrive."""

    def show(record: object) -> None:
        from aiokafka import ConsumerRecord

        assert isinstance(record, ConsumerRecord)
        stamp = datetime.fromtimestamp(record.timestamp / 1000, UTC).isoformat(
            timespec="milliseconds"
        )
        key = record.key.decode(errors="replace") if record.key else "-"
        console.rule(f"{record.topic}[{record.partition}]@{record.offset}  key={key}  {stamp}")
        for name, value in record.headers or ():
            if name.startswith("dlq_"):
                console.print(f"[yellow]{name}[/]: {bytes(value).decode(errors='replace')}")
        console.print(Syntax(kafka_tools.pretty(record), "json", word_wrap=True))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(kafka_tools.tail_topic(bootstrap, topic, show, from_beginning, limit))


@dlq_app.command("replay")
def dlq_replay(
    topic: Annotated[
        str,
        typer.Argument(help="Source topic (or its .dlq twin) whose dead letters to re-publish."),
    ],
    bootstrap: BootstrapOption = "127.0.0.1:19092",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be replayed; change nothing.")
    ] = False,
    group_id: Annotated[
        str, typer.Option(help="Consumer group that remembers what was replayed.")
    ] = "riskrelay-dlq-replay",
) -> None:
    """Re-publish dead-lettered events to their source topic once the cause is fixed."""

    def show(view: kafka_tools.DeadLetterView, sent: bool) -> None:
        verb = "replayed" if sent else "would replay"
        console.print(
            f"{verb} {view.source_topic} key={view.key} (dlq p{view.partition}@{view.offset}): {view.error}"
        )

    seen, sent = asyncio.run(
        kafka_tools.replay_dead_letters(
            bootstrap, topic, dry_run=dry_run, group_id=group_id, on_letter=show
        )
    )
    console.print(
        f"{seen} dead letter(s) found, {sent} re-published" + (" (dry run)" if dry_run else "")
    )


@sample_app.command("generate")
def sample_generate(
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write.")],
    count: Annotated[int, typer.Option(help="Number of ticket events.")] = 1000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same file).")] = 7,
    start: Annotated[
        str, typer.Option(help="Event time of the first ticket (ISO 8601).")
    ] = "2026-11-16T08:00:00+00:00",
) -> None:
    """Write realistic sample ticket events (mostly harmless, some risky, bursts of similar reports)."""
    from riskrelay.cli.sample_traffic import generate, write_jsonl

    events = generate(count, seed=seed, start=datetime.fromisoformat(start))
    write_jsonl(events, output)
    console.print(f"wrote {len(events)} events to {output}")


@escalation_app.command("plan")
def escalation_plan(
    level: Annotated[int, typer.Option("--level", min=1, max=5, help="Risk level 1-5.")],
    at: Annotated[
        str, typer.Option("--at", help="When the risk was flagged (ISO 8601 with offset).")
    ],
    policy: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Escalation policy YAML.")
    ] = None,
    calendar: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Business calendar YAML.")
    ] = None,
) -> None:
    """Print the escalation plan for a risk as JSON: deadlines, weekly review and every step."""
    import json

    from riskrelay.escalator.calendar import ConfigFileError, load_calendar
    from riskrelay.escalator.domain import preview
    from riskrelay.escalator.policy import load_policy
    from riskrelay.shared.events import RiskLevel

    try:
        flagged_at = datetime.fromisoformat(at)
    except ValueError as error:
        errors.print(f"[red]--at: not an ISO 8601 time: {at!r}[/]")
        raise typer.Exit(2) from error
    if flagged_at.tzinfo is None:
        errors.print("[red]--at: give a UTC offset or Z, e.g. 2026-11-20T16:30:00+01:00[/]")
        raise typer.Exit(2)
    try:
        plan = preview(RiskLevel(level), flagged_at, load_policy(policy), load_calendar(calendar))
    except ConfigFileError as error:
        errors.print(f"[red]{error}[/]")
        raise typer.Exit(2) from error
    sys.stdout.write(json.dumps(plan, indent=2) + "\n")


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":
    sys.exit(app())
