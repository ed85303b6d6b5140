"""Redaction cost per ticket: intake's redactor over the evaluation set's texts.

    .venv/bin/python bench/redaction.py [--iterations 3000] [--tickets eval/tickets.jsonl]

Each ticket's subject, description and comment are normalized as intake normalizes them, then
redacted the way :func:`riskrelay.intake.domain.assess_ticket` redacts them (with the event's
customer and agent names). The figure is CPU time per ticket (``time.process_time``, so other
processes on the machine count less than in wall time), the best of five rounds of
``--iterations`` tickets each (cycling through the file).
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

from riskrelay.intake.normalization import normalize_text
from riskrelay.intake.redaction import DEFAULT_REDACTOR, KnownNames
from riskrelay.shared.events import TicketEvent

ROOT = Path(__file__).resolve().parent.parent


def load_texts(path: Path) -> list[tuple[list[str], KnownNames]]:
    tickets: list[tuple[list[str], KnownNames]] = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        data = TicketEvent.model_validate_json(line).data
        texts = [data.subject, data.description]
        if data.comment is not None:
            texts.append(data.comment.body)
        names = KnownNames.of(data.customer.name, data.agent_name)
        tickets.append(([normalize_text(text) for text in texts], names))
    return tickets


def per_ticket_microseconds(tickets: list[tuple[list[str], KnownNames]], iterations: int) -> float:
    rounds: list[float] = []
    for _ in range(5):
        sample = list(itertools.islice(itertools.cycle(tickets), iterations))
        started = time.process_time()
        for texts, names in sample:
            for text in texts:
                DEFAULT_REDACTOR.redact(text, names)
        rounds.append((time.process_time() - started) / iterations * 1e6)
    return min(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--tickets", type=Path, default=ROOT / "eval" / "tickets.jsonl")
    args = parser.parse_args()
    tickets = load_texts(args.tickets)
    per_ticket_microseconds(tickets, min(args.iterations, 300))  # warm caches
    cost = per_ticket_microseconds(tickets, args.iterations)
    print(f"{len(tickets)} tickets, {args.iterations} per round: {cost:.1f} µs CPU per ticket")


if __name__ == "__main__":
    main()
