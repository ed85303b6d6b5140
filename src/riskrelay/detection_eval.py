"""Detection figures on text the models were never trained or tuned on.

    python -m riskrelay.detection_eval [--clinc datasets/clinc150/validation.jsonl]

Every message becomes an upstream ticket event, two hours apart on its own ticket and customer
(so this measures single-ticket detection, not surges) and runs through :func:`run_offline`:
the services' own intake and classifier steps, rules and learned models together. Figures:

* CLINC150 validation (real requests written by others): recall on ``report_fraud`` and
  ``report_lost_card``, false flags on every other in-scope intent (out-of-scope and the
  ambiguous ``account_blocked``/``freeze_account`` are left out), and the share of tickets the
  cascade sent to the full encoder;
* the held-out sentences (``semantic/examples/heldout``, written apart from the training
  files and never trained on): recall per indicator (flagged at all, and flagged with that
  indicator) and false flags on the harmless ones.

The figures are printed and written as JSON (``eval/detection.json``).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from riskrelay.classifier.policy import RiskPolicy, default_policy
from riskrelay.datasets import CLINC_VALIDATION
from riskrelay.intake.semantic.examples import CLINC_AMBIGUOUS_INTENTS, CLINC_SECURITY_INTENTS
from riskrelay.intake.service import Intake
from riskrelay.intake.settings import IntakeSettings
from riskrelay.offline import InputLine, TicketOutcome, parse_lines, run_offline

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUTPUT = ROOT / "eval" / "detection.json"
_EPOCH = datetime(2026, 6, 1, tzinfo=UTC)
_HELDOUT_INDICATORS = {
    "data_concern": "data_concern",
    "security": "security_issue",
    "compliance": "compliance_question",
    "severe_impact": "severe_impact",
    "reputation_threat": "reputation_threat",
}


@dataclass(frozen=True, slots=True)
class Message:
    text: str
    label: str
    """An indicator value, ``none`` for harmless, or a CLINC intent."""


def heldout_path() -> Path:
    return Path(str(resources.files("riskrelay.intake.semantic") / "examples" / "heldout"))


def load_heldout(folder: Path) -> list[Message]:
    messages: list[Message] = []
    for path in sorted(folder.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["entries"]:
            label = entry["indicator"]
            messages.append(Message(entry["text"], _HELDOUT_INDICATORS.get(label, label)))
    return messages


def load_clinc_validation(path: Path) -> list[Message]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [
        Message(row["text"], row["intent"])
        for row in rows
        if row["intent"] != "oos" and row["intent"] not in CLINC_AMBIGUOUS_INTENTS
    ]


def as_events(messages: Sequence[Message], prefix: str) -> list[InputLine]:
    lines = []
    for i, message in enumerate(messages):
        ticket = f"{prefix}-{i:05d}"
        lines.append(
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": f"e-{ticket}",
                    "source": f"evaluation/{prefix}",
                    "type": "riskrelay.ticket.created.v1",
                    "time": (_EPOCH + timedelta(hours=2 * i)).isoformat(),
                    "subject": ticket,
                    "datacontenttype": "application/json",
                    "data": {
                        "ticket_id": ticket,
                        "subject": message.text[:80],
                        "description": message.text,
                        "channel": "chat",
                        "customer": {"id": f"C-{ticket}", "segment": "consumer"},
                        "product": "evaluation",
                        "priority": "normal",
                        "tags": [],
                    },
                }
            )
        )
    return parse_lines(lines)


def _outcomes(
    messages: Sequence[Message], prefix: str, intake: Intake, policy: RiskPolicy
) -> list[TicketOutcome]:
    result = run_offline(as_events(messages, prefix), intake, policy)
    outcomes = [line.outcome for line in result.lines]
    missing = sum(outcome is None for outcome in outcomes)
    if missing:
        raise RuntimeError(f"{missing} evaluation tickets were rejected by intake")
    return [outcome for outcome in outcomes if outcome is not None]


def _rate(hits: int, total: int) -> float:
    return round(hits / total, 4) if total else 0.0


def clinc_figures(messages: Sequence[Message], outcomes: Sequence[TicketOutcome]) -> dict[str, Any]:
    risky = [
        o for m, o in zip(messages, outcomes, strict=True) if m.label in CLINC_SECURITY_INTENTS
    ]
    calm = [
        (m, o)
        for m, o in zip(messages, outcomes, strict=True)
        if m.label not in CLINC_SECURITY_INTENTS
    ]
    false_flags = Counter(m.label for m, o in calm if o.flagged)
    return {
        "risky": len(risky),
        "recall": _rate(sum(o.flagged for o in risky), len(risky)),
        "harmless": len(calm),
        "false_flag_rate": _rate(sum(o.flagged for _, o in calm), len(calm)),
        "false_flags_by_intent": dict(false_flags.most_common()),
    }


def heldout_figures(
    messages: Sequence[Message], outcomes: Sequence[TicketOutcome]
) -> dict[str, Any]:
    figures: dict[str, Any] = {"indicators": {}}
    pairs = list(zip(messages, outcomes, strict=True))
    for indicator in sorted({m.label for m in messages} - {"none"}):
        mine = [o for m, o in pairs if m.label == indicator]
        figures["indicators"][indicator] = {
            "messages": len(mine),
            "recall_flagged": _rate(sum(o.flagged for o in mine), len(mine)),
            "recall_indicator": _rate(sum(indicator in o.indicators for o in mine), len(mine)),
        }
    risky = [o for m, o in pairs if m.label != "none"]
    calm = [o for m, o in pairs if m.label == "none"]
    figures["recall_flagged"] = _rate(sum(o.flagged for o in risky), len(risky))
    figures["harmless"] = len(calm)
    figures["false_flag_rate"] = _rate(sum(o.flagged for o in calm), len(calm))
    for indicator, row in figures["indicators"].items():
        row["false_flag_rate"] = _rate(sum(indicator in o.indicators for o in calm), len(calm))
    return figures


def evaluate(intake: Intake, policy: RiskPolicy, clinc: Path, heldout: Path) -> dict[str, Any]:
    clinc_messages = load_clinc_validation(clinc)
    heldout_messages = load_heldout(heldout)
    semantic = intake.config.semantic
    reach = None
    if semantic is not None:
        texts = [(m.text, m.text) for m in clinc_messages]
        screened = [
            s for i in range(0, len(texts), 500) for s in semantic.screen(texts[i : i + 500])
        ]
        reach = _rate(sum(s.needs_full for s in screened), len(screened))
    return {
        "full_encoder_share_clinc150": reach,
        "models": semantic.models.version if semantic else None,
        "encoder": semantic.models.encoder_id if semantic else None,
        "rule_pack": intake.rule_pack.version,
        "clinc150_validation": clinc_figures(
            clinc_messages, _outcomes(clinc_messages, "clinc", intake, policy)
        ),
        "heldout": heldout_figures(
            heldout_messages, _outcomes(heldout_messages, "heldout", intake, policy)
        ),
    }


def _print(figures: dict[str, Any], console: Console) -> None:
    clinc = figures["clinc150_validation"]
    console.print(
        f"[bold]CLINC150 validation[/bold] (real requests, never trained on; models"
        f" {figures['models']}): recall {clinc['recall']:.3f} on {clinc['risky']} fraud and"
        f" lost-card reports, false flags {clinc['false_flag_rate']:.4f} on {clinc['harmless']}"
        " everyday requests (goal: recall >= 0.95, false flags <= 0.01); share of tickets the"
        f" cascade sent to the full encoder: {figures['full_encoder_share_clinc150']}"
    )
    heldout = figures["heldout"]
    table = Table(title="Held-out sentences (never trained on)")
    for column in ("indicator", "messages", "flagged", "with indicator", "false flags"):
        table.add_column(column, justify="right" if column != "indicator" else "left")
    for indicator, row in heldout["indicators"].items():
        table.add_row(
            indicator,
            str(row["messages"]),
            f"{row['recall_flagged']:.2f}",
            f"{row['recall_indicator']:.2f}",
            f"{row['false_flag_rate']:.3f}",
        )
    table.add_row(
        "all risky / harmless",
        f"{heldout['harmless']}",
        f"{heldout['recall_flagged']:.2f}",
        "",
        f"{heldout['false_flag_rate']:.3f}",
    )
    console.print(table)


def main(
    clinc: Annotated[Path, typer.Option(help="CLINC150 validation split.")] = (CLINC_VALIDATION),
    heldout: Annotated[Path | None, typer.Option(help="Folder of held-out YAML.")] = None,
    output: Annotated[Path, typer.Option(help="Where to write the figures.")] = DEFAULT_OUTPUT,
) -> None:
    """Print detection recall and false flags on data never trained or tuned on."""
    settings = IntakeSettings()
    settings = settings.model_copy(
        update={"detection": settings.detection.model_copy(update={"semantic": True})}
    )
    intake = Intake.from_settings(settings)
    figures = evaluate(intake, default_policy(), clinc, heldout or heldout_path())
    output.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _print(figures, Console())


if __name__ == "__main__":
    typer.run(main)
