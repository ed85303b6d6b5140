"""The `riskrelay` command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated

import httpx
import typer
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.syntax import Syntax
from rich.table import Table

from riskrelay.cli import kafka_tools
from riskrelay.cli.classify import classify_command
from riskrelay.cli.report import report_app
from riskrelay.cli.stack import (
    INBOX_PORT,
    SERVICES,
    Stack,
    StackConfig,
    exit_description,
    stop_from_state,
)
from riskrelay.cli.train import train_command
from riskrelay.devstack import BrokerKind

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
app.command("train")(train_command)
app.add_typer(report_app, name="report")

# soft_wrap: a message is one line whatever the width, so the addresses in it stay whole.
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

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


class BrokerChoice(StrEnum):
    """The broker `riskrelay dev up` starts."""

    tansu = "tansu"
    kafka = "kafka"

    @property
    def kind(self) -> BrokerKind:
        return "kafka" if self is BrokerChoice.kafka else "tansu"


def _stack_config(
    data_dir: Path,
    kafka_port: int,
    pg_port: int,
    base_port: int | None,
    broker: BrokerKind = "tansu",
) -> StackConfig:
    ports = dict(SERVICES)
    inbox_port = INBOX_PORT
    if base_port is not None:
        ports = {name: base_port + i for i, name in enumerate(SERVICES)}
        inbox_port = base_port + len(SERVICES)
    return StackConfig(
        data_dir=data_dir,
        kafka_port=kafka_port,
        broker=broker,
        pg_port=pg_port,
        service_ports=ports,
        inbox_port=inbox_port,
    )


def print_whole(target: Console, renderable: RenderableType) -> None:
    """Print without cutting: a terminal wraps at its width, anything else (a pipe, a log
    file) gets lines as long as the content, so every URL stays whole."""
    if target.is_terminal:
        target.print(renderable)
        return
    needed = Measurement.get(target, target.options.update(width=10_000), renderable).maximum
    Console(file=target.file, width=max(needed, target.width), no_color=True).print(renderable)


def stack_table(config: StackConfig, stack: Stack) -> Table:
    table = Table(title="riskrelay dev stack", show_lines=False)
    table.add_column("component")
    table.add_column("address")
    table.add_column("docs / notes")
    if config.broker == "kafka":
        broker_notes = f"Apache Kafka; data in {config.data_dir / 'kafka'}, kept across runs"
    else:
        broker_notes = "tansu, in memory; restart loses messages"
    table.add_row("kafka", config.bootstrap, broker_notes)
    pg_notes = str(stack.postgres.data_dir) if stack.postgres else "external"
    table.add_row("postgresql", stack.database_url, pg_notes)
    for name in config.service_ports:
        base = config.service_url(name)
        notes = f"{base}/docs  {base}/docs/asyncapi"
        if name == "reporting":
            notes = f"{base}/dashboard  " + notes
        table.add_row(name, base, notes)
    table.add_row(
        "notifications", f"{config.inbox_url}/", f"demo roster's inbox: {config.inbox_file}"
    )
    table.add_row(
        "mail", f"smtp://{config.http_host}:{config.smtp_port}", f"demo e-mail: {config.mail_dir}"
    )
    table.add_row("tokens", str(config.tokens_file), "role -> bearer token")
    return table


class StopRequestedError(Exception):
    """SIGTERM (from `riskrelay dev down`) reached `riskrelay dev up`."""


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    # One request is enough; a second one must not interrupt the orderly stop it started.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise StopRequestedError


@contextlib.contextmanager
def broker_errors() -> Iterator[None]:
    """A broker that cannot be reached (or fails a request) is one line and exit code 1."""
    kafka_tools.quiet_client_logs()
    try:
        yield
    except kafka_tools.BrokerError as error:
        errors.print(f"[red]error:[/] {error}", markup=True, highlight=False)
        raise typer.Exit(1) from error
    except TimeoutError as error:
        errors.print(f"[red]error:[/] {error}", markup=True, highlight=False)
        raise typer.Exit(1) from error


@dev_app.command("up")
def dev_up(
    data_dir: DataDirOption = Path(".riskrelay"),
    kafka_port: Annotated[int, typer.Option(help="Broker port.")] = 19092,
    broker: Annotated[
        BrokerChoice,
        typer.Option(
            help="tansu (in memory, Python only) or Apache Kafka (needs Java 17 and Maven)."
        ),
    ] = BrokerChoice.tansu,
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
    config = _stack_config(data_dir, kafka_port, pg_port, base_port, broker.kind)
    if config.state_file.exists():
        errors.print(
            f"[red]a stack is already running (see {config.state_file}); run `riskrelay dev down` first[/]"
        )
        raise typer.Exit(1)
    stack = Stack(config, supervisor_pid=os.getpid())
    signal.signal(signal.SIGTERM, _stop_requested)
    try:
        with console.status("starting broker, PostgreSQL and the notification inbox…"):
            stack.start_infrastructure()
        console.print(
            f"[green]✓[/] broker on {config.bootstrap}, PostgreSQL on 127.0.0.1:{pg_port},"
            f" notification inbox on {config.inbox_url}/"
        )
        with console.status("starting services (migrations, topics, consumer groups)…"):
            stack.start_services()
        console.print("[green]✓[/] all five services answer /readyz")
        if "reporting" in config.services:
            console.print(
                f"console: sign in at {config.service_url('reporting')}/console/login as any"
                f" role's user; e-mails and passwords are in {config.console_users_file}"
            )
        print_whole(console, stack_table(config, stack))
        if sample:
            try:
                _run_demo(config, sample, seed, datetime.now(UTC).replace(microsecond=0))
            except (TimeoutError, kafka_tools.BrokerError, httpx.HTTPError) as error:
                # The stack itself is up: say what went wrong and keep it running.
                errors.print(f"[red]the demo's traffic did not land: {error}[/]")
        console.print("running; press Ctrl-C (or run `riskrelay dev down`) to stop")
        started = time.monotonic()
        while exit_after is None or time.monotonic() - started <= exit_after:
            ended = {n: p.returncode for n, p in stack.processes().items() if p.poll() is not None}
            for name, code in ended.items():
                errors.print(
                    f"[red]{name} {exit_description(code)}; see {config.logs_dir / (name + '.log')}[/]"
                )
            if ended:
                raise typer.Exit(1)
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stop requested (Ctrl-C)")
    except StopRequestedError:
        console.print("stop requested (`riskrelay dev down`)")
    except (RuntimeError, TimeoutError, kafka_tools.BrokerError) as error:
        errors.print(f"[red]could not start the stack: {error}[/]")
        raise typer.Exit(1) from error
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if stack.running:
            with console.status("stopping…"):
                stack.stop()
            console.print("stopped")


@dev_app.command("down")
def dev_down(data_dir: DataDirOption = Path(".riskrelay")) -> None:
    """Stop a stack started by `riskrelay dev up` in another terminal."""
    report = stop_from_state(StackConfig(data_dir=data_dir))
    if not report.stopped:
        console.print("nothing was running")
    elif report.by_supervisor:
        console.print(
            f"`riskrelay dev up` (pid {report.by_supervisor}) stopped: {', '.join(report.stopped)}"
        )
    else:
        console.print("stopped: " + ", ".join(report.stopped))


@dev_app.command("inbox", hidden=True)
def dev_inbox(
    file: Annotated[Path, typer.Option(help="JSON Lines file the notifications are appended to.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = INBOX_PORT,
    smtp_port: Annotated[
        int | None, typer.Option(help="SMTP receiver's port (default: the port + 19).")
    ] = None,
) -> None:
    """The dev stack's notification inbox and SMTP receiver (`riskrelay dev up` starts them)."""
    import uvicorn
    from aiosmtpd.controller import Controller

    from riskrelay.cli.inbox import MailReceiver, create_inbox_app, demo_smtp_port

    mail = Controller(MailReceiver(file), hostname=host, port=smtp_port or demo_smtp_port(port))
    mail.start()
    try:
        uvicorn.run(create_inbox_app(file), host=host, port=port, log_level="warning")
    finally:
        mail.stop()


def _run_demo(config: StackConfig, count: int, seed: int, now: datetime) -> None:
    """Land the demo's traffic, then say what the dashboard shows and where to look."""
    from riskrelay.cli import demo

    status = console.status("waiting for the five services to process the traffic…")

    def publish(topic: str, lines: list[kafka_tools.ParsedLine]) -> None:
        status.stop()
        _publish_with_progress(config.bootstrap, topic, lines)
        status.start()

    with status:
        result = demo.run_demo(config, count, seed, now, publish)
    events, acknowledged = result.events, result.acknowledged
    token = demo.viewer_token(config)
    figures = result.figures
    links = demo.demo_links(config, token, events)
    table = Table(title="demo traffic", show_header=False)
    table.add_column("what")
    table.add_column("where")
    table.add_row(
        "published",
        f"{len(events)} ticket events from {events[0].time:%Y-%m-%d %H:%M} UTC to now,"
        " with a surge in the last hours",
    )
    table.add_row(
        "history",
        f"{acknowledged} escalation steps older than"
        f" {demo.KEEP_OPEN.total_seconds() / 3600:.0f} h acknowledged as of their time",
    )
    table.add_row("dashboard shows", figures.describe())
    table.add_row("dashboard", links.dashboard)
    table.add_row("weekly summary", links.weekly)
    table.add_row("monthly report", links.monthly)
    received = demo.notifications_received(config)
    table.add_row(
        "notifications", f"{links.notifications}  ({received} so far; {config.inbox_file})"
    )
    table.add_row("open escalations", links.open_escalations)
    table.add_row(
        "acknowledge",
        "POST /v1/escalations/<escalation_id>/ack on the escalator with the token of the"
        f" step's role (from {config.tokens_file})",
    )
    print_whole(console, table)


def _publish_with_progress(bootstrap: str, topic: str, lines: list[kafka_tools.ParsedLine]) -> None:
    async def publish() -> None:
        async with kafka_tools.started(kafka_tools.producer(bootstrap), bootstrap) as producer:
            with Progress(
                TextColumn("publishing to {task.fields[topic]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as progress:
                task = progress.add_task("publish", total=len(lines), topic=topic)
                await kafka_tools.send_lines(
                    producer, topic, lines, lambda n: progress.advance(task, n)
                )

    asyncio.run(publish())


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
        with broker_errors():
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
        times = kafka_tools.record_times(record.value, record.timestamp, record.timestamp_type)
        key = record.key.decode(errors="replace") if record.key else "-"
        console.rule(f"{record.topic}[{record.partition}]@{record.offset}  key={key}")
        console.print(times, highlight=False, soft_wrap=True)
        for name, value in record.headers or ():
            if name.startswith("dlq_"):
                console.print(f"[yellow]{name}[/]: {bytes(value).decode(errors='replace')}")
        console.print(Syntax(kafka_tools.pretty(record), "json", word_wrap=True))

    with contextlib.suppress(KeyboardInterrupt), broker_errors():
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

    with broker_errors():
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
    until: Annotated[
        str | None,
        typer.Option(
            help="Instead: the demo's traffic, the 14 days up to this time (ISO 8601, or 'now')."
        ),
    ] = None,
) -> None:
    """Write realistic sample ticket events (mostly harmless, some risky, bursts of similar reports)."""
    from riskrelay.cli.sample_traffic import generate, generate_recent, write_jsonl

    try:
        if until is None:
            events = generate(count, seed=seed, start=datetime.fromisoformat(start))
        else:
            now = datetime.now(UTC) if until == "now" else datetime.fromisoformat(until)
            events = generate_recent(count, seed=seed, now=now)
    except ValueError as error:
        errors.print(f"[red]error:[/] {error}")
        raise typer.Exit(2) from error
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
