"""`riskrelay classify`: the intake and classifier pipeline over a JSONL file, offline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from riskrelay.classifier.policy import PolicyError, RiskPolicy, default_policy, load_policy
from riskrelay.intake.errors import RulePackError
from riskrelay.intake.rules import RulePack, load_rule_pack

if TYPE_CHECKING:
    from riskrelay.offline import OfflineResult

EXIT_INVALID_LINES = 1
EXIT_USAGE = 2

# Below this many events a progress bar would only flicker.
_PROGRESS_MIN_EVENTS = 2_000

_errors = Console(stderr=True)


def load_configuration(
    policy_path: Path | None, rule_paths: list[Path]
) -> tuple[RiskPolicy, RulePack]:
    """The policy and rule pack an offline run uses; raises ``typer.Exit(2)`` with a message."""
    for path in [*([policy_path] if policy_path else []), *rule_paths]:
        if not path.is_file():
            _errors.print(f"[red]no such file: {path}[/]")
            raise typer.Exit(EXIT_USAGE)
    try:
        policy = load_policy(policy_path) if policy_path is not None else default_policy()
    except (PolicyError, OSError, UnicodeDecodeError) as error:
        _errors.print(f"[red]invalid policy: {error}[/]", markup=False)
        raise typer.Exit(EXIT_USAGE) from error
    try:
        rule_pack = load_rule_pack(rule_paths)
    except RulePackError as error:
        _errors.print(f"invalid rule pack: {error}", style="red", markup=False)
        raise typer.Exit(EXIT_USAGE) from error
    return policy, rule_pack


def _read_lines(file: str) -> list[bytes]:
    if file == "-":
        return sys.stdin.buffer.read().splitlines()
    path = Path(file)
    if not path.is_file():
        _errors.print(f"[red]no such file: {file}[/]")
        raise typer.Exit(EXIT_USAGE)
    return path.read_bytes().splitlines()


def _write(result: OfflineResult, out: TextIO, *, explain: bool = False) -> None:
    for line in result.lines:
        out.write(line.to_json_line(explain=explain) + "\n")
    out.flush()


def classify_command(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE.jsonl",
            help="Upstream ticket events, one JSON object per line; `-` reads standard input.",
        ),
    ],
    policy: Annotated[
        Path | None,
        typer.Option(
            "--policy", help="Risk policy YAML to classify with (default: the shipped policy)."
        ),
    ] = None,
    rules: Annotated[
        list[Path] | None,
        typer.Option(
            "--rules",
            help="Rule pack extension YAML, applied after intake's default pack; repeatable.",
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help=(
                "Add each ticket's detections: rule or model, the redacted evidence, and for"
                " models the score, threshold, nearest labelled examples and model version."
            ),
        ),
    ] = False,
) -> None:
    """Classify ticket events offline: intake's checks and the classifier, no broker or database.

    Events are processed in event-time order (ties: input order) through the same application
    steps the intake and classifier services run. One JSON object is printed per non-blank input
    line, in input order: `line`, `event_id`, `ticket_id`, `flagged`, `level`, `category`,
    `risk_id`, `indicators`, `explanation` (`level`, `category`, `risk_id` are null when the
    ticket is not flagged). Each ticket is reported in its final state, so a ticket flagged
    later because its cluster surged shows that flag on its own line too. The output depends
    only on the input, the policy, the rules and intake's models and encoder (the bundled ones
    unless `RISKRELAY_INTAKE_DETECTION__*` or `RISKRELAY_INTAKE_ENCODER__*` say otherwise, as
    for the service; `RISKRELAY_INTAKE_DETECTION__SEMANTIC=false` runs the rules alone).

    An invalid line prints `{"line": N, "error": "..."}` in its place (so output lines stay
    aligned with input lines), the rest is still classified, and the exit code is 1. A missing
    file or an invalid policy or rule pack exits with code 2 and prints nothing on stdout.

    Dry-run a policy or rule change against last month's tickets: run once with the current
    files and once with `--policy new.yaml` (or `--rules extra.yaml`), then compare the two
    outputs line by line, e.g. `diff <(riskrelay classify march.jsonl) <(riskrelay classify
    march.jsonl --policy new.yaml)`.
    """
    # Imported here: the encoder and the services' steps take seconds to import, and every other
    # `riskrelay` command would pay for them.
    from riskrelay.intake.encoder import EncoderLoadError
    from riskrelay.intake.semantic.model import ModelArtifactError
    from riskrelay.intake.service import Intake
    from riskrelay.intake.settings import IntakeSettings
    from riskrelay.offline import parse_lines, run_offline

    risk_policy, rule_pack = load_configuration(policy, rules or [])
    try:
        intake = Intake.from_settings(IntakeSettings(), rule_pack=rule_pack)
    except (EncoderLoadError, ModelArtifactError) as error:
        _errors.print(f"cannot load the indicator models: {error}", style="red", markup=False)
        raise typer.Exit(EXIT_USAGE) from error
    inputs = parse_lines(_read_lines(file))
    valid = sum(1 for item in inputs if item.event is not None)
    if _errors.is_terminal and valid >= _PROGRESS_MIN_EVENTS:
        with Progress(
            TextColumn("classifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_errors,
            transient=True,
        ) as progress:
            task = progress.add_task("classify", total=valid)
            result = run_offline(
                inputs,
                intake,
                risk_policy,
                on_progress=lambda done: progress.update(task, completed=done),
            )
    else:
        result = run_offline(inputs, intake, risk_policy)
    _write(result, sys.stdout, explain=explain)
    if result.error_count:
        _errors.print(
            f"{result.error_count} line(s) could not be classified; see their `error`.",
            style="yellow",
        )
        raise typer.Exit(EXIT_INVALID_LINES)
