"""Similar-report clustering figures, through intake's own step (the service's decision path).

    .venv/bin/python bench/surges.py [--orders 300] [--seed 1] [--json bench/results/surges.json]

Every ticket goes through :func:`riskrelay.intake.service.intake_step` with the bundled semantic
detector (the full encoder, the problem-report gate) over the in-memory repository, in batches
of 50 as a consumer would hand them over:

* the six-customer surge "I can see somebody else's orders and address in my account" in six
  wordings, 5 minutes apart: clusters formed and whether it surges; then the clustering alone
  over ``--orders`` random arrival orders of the six (clusters formed, the largest share);
* a busy day: 1,080 CLINC150 everyday requests (train split, every intent but report_fraud and
  report_lost_card), 20 seconds apart on one product, each from its own customer: the share
  flagged as multiple similar reports (goal 0 %); then the same day with the surge inside it;
* two such days drawn only from the banking and card intents, where "my account is blocked" or
  "my card was declined" pass the problem gate: the share flagged on the first day, when every
  topic is new, and on the second, against the first day's history;
* clustering CPU: :func:`~riskrelay.intake.clustering.assign_to_cluster`'s process time over
  the busy day's completed assessments (median of 20 rounds), per ticket and per problem report
  (the only tickets it does work for).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from riskrelay.intake import clustering
from riskrelay.intake.clustering import ClusterIndex, assign_to_cluster
from riskrelay.intake.semantic.config import DetectionSettings
from riskrelay.intake.service import AssessedTicket, Intake, MemoryIntakeRepository, intake_step
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.events import Indicator, TicketEvent, TicketFlaggedEvent

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
PRODUCT = "Online Store"
SURGE = [
    "I can see somebody else's orders and address in my account",
    "When I log in I see another customer's order history and their home address",
    "My account page is showing orders that aren't mine, with a stranger's address",
    "Someone else's personal details and purchases appear in my profile",
    "Your app shows me a different person's orders and shipping address",
    "I'm seeing other people's data in my account - orders, names, addresses",
]
RISK_INTENTS = {"report_fraud", "report_lost_card"}
BANKING_INTENTS = {  # CLINC150's banking and credit-card domains, the risk intents left out
    "transfer",
    "transactions",
    "balance",
    "freeze_account",
    "pay_bill",
    "bill_balance",
    "bill_due",
    "interest_rate",
    "routing",
    "min_payment",
    "order_checks",
    "pin_change",
    "account_blocked",
    "spending_history",
    "credit_score",
    "credit_limit",
    "rewards_balance",
    "new_card",
    "application_status",
    "card_declined",
    "international_fees",
    "apr",
    "redeem_rewards",
    "credit_limit_change",
    "damaged_card",
    "replacement_card_duration",
    "expiration_date",
}


def ticket_event(ticket_id: str, text: str, at: datetime, customer: str) -> TicketEvent:
    return TicketEvent.model_validate(
        {
            "specversion": "1.0",
            "id": f"evt-{ticket_id}",
            "source": "bench://surges",
            "type": "riskrelay.ticket.created.v1",
            "time": at.isoformat(),
            "subject": ticket_id,
            "data": {
                "ticket_id": ticket_id,
                "subject": "",
                "description": text,
                "channel": "chat",
                "customer": {"id": customer, "segment": "consumer"},
                "tags": [],
                "product": PRODUCT,
                "priority": "normal",
            },
        }
    )


async def run_step(
    intake: Intake, events: Sequence[TicketEvent]
) -> tuple[MemoryIntakeRepository, list[TicketFlaggedEvent]]:
    repository = MemoryIntakeRepository()
    flags: list[TicketFlaggedEvent] = []
    for start in range(0, len(events), 50):
        batch = [AssessedTicket(e, intake.assess(e)) for e in events[start : start + 50]]
        result = await intake_step(intake, repository, batch)
        await repository.save(result.changes)
        flags += result.flags
    return repository, flags


def similar_reports(flags: Sequence[TicketFlaggedEvent]) -> set[str]:
    return {
        flag.data.ticket_id
        for flag in flags
        if any(d.indicator is Indicator.MULTIPLE_SIMILAR_REPORTS for d in flag.data.indicators)
    }


def index_of(repository: MemoryIntakeRepository) -> ClusterIndex:
    return repository.cluster_index(clustering.product_key(PRODUCT)).index


def surge_events(offset: timedelta, prefix: str = "S") -> list[TicketEvent]:
    return [
        ticket_event(f"{prefix}-{n}", text, START + offset + timedelta(minutes=5 * n), f"SC-{n}")
        for n, text in enumerate(SURGE)
    ]


def busy_day(
    seed: int, intents: set[str] | None = None, day: int = 0, prefix: str = "D"
) -> list[TicketEvent]:
    """1,080 CLINC150 training requests 20 s apart from 06:00 of day ``day``: every everyday
    intent, or only ``intents`` (never the two risk intents), each from its own customer."""
    rows = [
        json.loads(line)
        for line in (ROOT / "datasets/clinc150/train.jsonl").read_text().splitlines()
        if line.strip()
    ]
    everyday = [
        row
        for row in rows
        if row["intent"] not in RISK_INTENTS and (intents is None or row["intent"] in intents)
    ]
    picked = random.Random(seed * 100 + day).sample(everyday, 1_080)
    start = START + timedelta(days=day)
    return [
        ticket_event(
            f"{prefix}-{n}", row["text"], start + timedelta(seconds=20 * n), f"{prefix}C-{n}"
        )
        for n, row in enumerate(picked)
    ]


def order_figures(intake: Intake, orders: int) -> dict[str, Any]:
    semantic = intake.config.semantic
    assert semantic is not None
    vectors = semantic.full.encode(SURGE)
    shuffler = random.Random(5)
    clusters: Counter[int] = Counter()
    surged = 0
    for _ in range(orders):
        order = list(range(len(SURGE)))
        shuffler.shuffle(order)
        index = ClusterIndex()
        sizes: Counter[str] = Counter()
        for step, n in enumerate(order):
            assignment = assign_to_cluster(
                index,
                ticket_id=f"S-{n}",
                customer_id=f"SC-{n}",
                occurred_at=START + timedelta(minutes=5 * step),
                product=PRODUCT,
                vector=vectors[n],
                config=intake.config.clusters,
            )
            assert assignment is not None
            sizes[assignment.cluster_id] += 1
        clusters[len(sizes)] += 1
        surged += any(c.surging for c in index.clusters.values())
    return {
        "orders": orders,
        "clusters_formed_by_order": {str(k): v for k, v in sorted(clusters.items())},
        "share_in_one_cluster": clusters[1] / orders,
        "share_surging": surged / orders,
    }


def clustering_cpu(
    intake: Intake, events: Sequence[TicketEvent], rounds: int = 20
) -> tuple[float, int]:
    """Process seconds of assign_to_cluster over the events' completed assessments (as the
    step calls it, on a fresh index: the median of ``rounds``), and how many of them were
    problem reports."""
    assessments = [
        ticket.assessment
        for ticket in intake.complete([AssessedTicket(e, intake.assess(e)) for e in events])
    ]
    timings = []
    clustered = 0
    for _ in range(rounds):
        index = ClusterIndex()
        clustered = 0
        started = time.process_time()
        for assessment in assessments:
            assignment = assign_to_cluster(
                index,
                ticket_id=assessment.ticket_id,
                customer_id=assessment.customer_id,
                occurred_at=assessment.occurred_at,
                product=assessment.product,
                vector=assessment.cluster_vector,
                config=intake.config.clusters,
            )
            clustered += assignment is not None
        timings.append(time.process_time() - started)
    return statistics.median(timings), clustered


def measure(intake: Intake, orders: int, seed: int, log: Callable[[str], None]) -> dict[str, Any]:
    repository, flags = asyncio.run(run_step(intake, surge_events(timedelta(hours=3))))
    index = index_of(repository)
    surge = {
        "clusters_formed": len(index.clusters),
        "surged": any(c.surging for c in index.clusters.values()),
        "flagged_as_similar_reports": len(similar_reports(flags)),
        **order_figures(intake, orders),
    }
    log(
        f"six-wording surge: {surge['clusters_formed']} cluster(s), surged: {surge['surged']},"
        f" {surge['flagged_as_similar_reports']} of 6 flagged; over {orders} random orders one"
        f" cluster {surge['share_in_one_cluster']:.0%}, surging {surge['share_surging']:.0%}"
        f" (orders by clusters formed: {surge['clusters_formed_by_order']})"
    )

    day = busy_day(seed)
    repository, flags = asyncio.run(run_step(intake, day))
    index = index_of(repository)
    flagged = similar_reports(flags)
    busiest = max((len(c.customer_ids) for c in index.clusters.values()), default=0)
    seconds, clustered = clustering_cpu(intake, day)
    busy = {
        "tickets": len(day),
        "problem_reports": clustered,
        "clusters": len(index.clusters),
        "topics": len(index.topics),
        "largest_cluster_customers": busiest,
        "flagged_as_similar_reports": len(flagged),
        "share_flagged_as_similar_reports": len(flagged) / len(day),
        "clustering_us_per_ticket": seconds / len(day) * 1e6,
        "clustering_us_per_problem_report": seconds / max(clustered, 1) * 1e6,
    }
    log(
        f"busy day: {len(day)} everyday requests 20 s apart, {clustered} problem reports"
        f" in {len(index.clusters)} clusters (largest {busiest} customers),"
        f" {busy['share_flagged_as_similar_reports']:.1%} flagged as multiple similar reports;"
        f" clustering {busy['clustering_us_per_ticket']:.0f} µs CPU per ticket,"
        f" {busy['clustering_us_per_problem_report']:.0f} µs per problem report"
    )

    inside = sorted(
        [*day, *surge_events(timedelta(hours=4), prefix="X")], key=lambda e: (e.time, e.id)
    )
    _, flags = asyncio.run(run_step(intake, inside))
    flagged = similar_reports(flags)
    with_incident = {
        "incident_tickets_flagged": len({t for t in flagged if t.startswith("X-")}),
        "everyday_tickets_flagged": len({t for t in flagged if t.startswith("D-")}),
    }
    log(
        f"the same day with the surge inside it: {with_incident['incident_tickets_flagged']} of 6"
        f" incident tickets and {with_incident['everyday_tickets_flagged']} everyday requests"
        " flagged as multiple similar reports"
    )

    first = busy_day(seed, BANKING_INTENTS, day=0, prefix="P")
    second = busy_day(seed, BANKING_INTENTS, day=1, prefix="D")
    _, flags = asyncio.run(run_step(intake, [*first, *second]))
    flagged = similar_reports(flags)
    banking = {
        "first_day_share_flagged": sum(t.startswith("P-") for t in flagged) / len(first),
        "second_day_share_flagged": sum(t.startswith("D-") for t in flagged) / len(second),
    }
    log(
        "two busy days of banking and card requests only (20 s apart): flagged as multiple"
        f" similar reports {banking['first_day_share_flagged']:.1%} on the first day (every"
        f" topic new), {banking['second_day_share_flagged']:.1%} on the second"
    )
    return {
        "surge": surge,
        "busy_day": busy,
        "busy_day_with_incident": with_incident,
        "banking_days": banking,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1, help="Which 1,080 CLINC150 requests.")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench/results/surges.json",
        help="Also write the figures here (default: bench/results/surges.json).",
    )
    args = parser.parse_args()
    intake = Intake.from_settings(IntakeSettings(detection=DetectionSettings(semantic=True)))
    figures = measure(intake, args.orders, args.seed, print)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
