"""Time to render the Monthly Risk Report over a million risk-flagged tickets.

    uv run python bench/reporting_monthly.py [--tickets 1000000] [--month 2026-11] [--repeat 3]

Loads ``--tickets`` flagged tickets into the reported month (and a quarter as many into the
month before, for the month-over-month comparison) straight into the reporting read model with
``COPY``, plus what goes with them at realistic ratios: risks of ~20 tickets (clusters), their
classification history (a tenth upgraded later: near misses), Risk Register versions of the
level 3-5 risks (some mitigated, some closed and back again) and escalation steps with
acknowledgements. Then the report is produced by the service's own code
(:func:`riskrelay.reporting.generate.produce`: the SQL aggregations, the pure report, the
renderer) as JSON and as HTML, ``--repeat`` times each; the first (cold) and best times are
reported.

Figures are printed and written to ``bench/results/reporting_monthly.json``. Uses
``RISKRELAY_TEST_DATABASE_URL`` when set, else starts an embedded PostgreSQL in a temporary
directory (removed afterwards). The schema it creates is dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from riskrelay.devstack import EmbeddedPostgres, free_port
from riskrelay.reporting.generate import produce
from riskrelay.reporting.periods import Period, parse_month, previous_month
from riskrelay.reporting.render import ReportFormat
from riskrelay.shared.events import RiskCategory, RiskStatus
from riskrelay.shared.migrations import migrate

console = Console(stderr=True)
RESULTS = Path(__file__).parent / "results"
TICKETS_PER_RISK = 20
CHANNELS = ["email", "chat", "phone", "web", "social", "api"]
PRODUCTS = [f"Product {n}" for n in range(40)]
SEGMENTS = ["consumer", "smb", "enterprise", "public_sector"]
CATEGORIES = [c.value for c in RiskCategory]
LEVEL_WEIGHTS = [(1, 35), (2, 30), (3, 20), (4, 10), (5, 5)]


@contextlib.contextmanager
def database_url() -> Iterator[str]:
    given = os.environ.get("RISKRELAY_TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="riskrelay-bench-pg-")), free_port())
    server.start()
    try:
        yield server.url
    finally:
        server.destroy()


def _moment(rng: random.Random, period: Period) -> datetime:
    return period.start + timedelta(
        seconds=rng.uniform(0, (period.end - period.start).total_seconds() - 1)
    )


def generate(
    tickets: int, period: Period, previous: Period, seed: int
) -> dict[str, list[tuple[Any, ...]]]:
    """Rows for every read-model table, deterministic for a seed."""
    rng = random.Random(seed)
    rows: dict[str, list[tuple[Any, ...]]] = {
        name: []
        for name in (
            "flagged_tickets", "tickets", "clusters", "risk_classifications", "ticket_risks",
            "cluster_risks", "register_versions", "escalation_notices", "escalation_acks",
        )
    }  # fmt: skip
    total = tickets + tickets // 4
    risks = max(1, total // TICKETS_PER_RISK)
    levels = [level for level, weight in LEVEL_WEIGHTS for _ in range(weight)]
    for r in range(risks):
        in_current = r < risks * 4 // 5
        span = period if in_current else previous
        first = _moment(rng, span)
        risk_id, cluster_id = f"R-{r:07d}", f"cl-{r:07d}"
        level = rng.choice(levels)
        category = rng.choice(CATEGORIES)
        product = rng.choice(PRODUCTS)
        upgraded = level >= 3 and rng.random() < 0.1
        initial = 2 if upgraded else level
        rows["risk_classifications"].append(
            (f"rc-{r}-0", risk_id, initial, None, category, cluster_id, f"Risk {r}",
             TICKETS_PER_RISK, first, first, first + timedelta(minutes=1), False)
        )  # fmt: skip
        if upgraded:
            at = first + timedelta(hours=rng.uniform(1, 96))
            rows["risk_classifications"].append(
                (f"rc-{r}-1", risk_id, level, initial, category, cluster_id, f"Risk {r}",
                 TICKETS_PER_RISK, first, at, at, rng.random() < 0.3)
            )  # fmt: skip
        rows["cluster_risks"].append((cluster_id, risk_id))
        last = first
        for t in range(TICKETS_PER_RISK):
            ticket_id = f"T-{r:07d}-{t:02d}"
            at = first + timedelta(minutes=rng.uniform(0, 7 * 24 * 60)) if t else first
            at = min(at, span.end - timedelta(seconds=1))
            last = max(last, at)
            channel = rng.choice(CHANNELS)
            rows["flagged_tickets"].append(
                (ticket_id, at, at, channel, product, rng.choice(SEGMENTS), cluster_id)
            )
            rows["tickets"].append((ticket_id, channel, product, at, at, None))
            if t < 16:  # the rest joined the risk through their cluster only
                rows["ticket_risks"].append((ticket_id, risk_id))
        rows["clusters"].append(
            (cluster_id, TICKETS_PER_RISK, TICKETS_PER_RISK - 2, True, first, last, product)
        )
        if level >= 3:
            status = rng.choice(
                [
                    RiskStatus.ESCALATED,
                    RiskStatus.MITIGATING,
                    RiskStatus.MONITORING,
                    RiskStatus.CLOSED,
                ]
            ).value
            registered = first + timedelta(minutes=5)
            rows["register_versions"].append(
                (risk_id, 1, f"rv-{r}-1", level, category, "identified", f"Risk {r}", None, None,
                 first, TICKETS_PER_RISK, None, registered)
            )  # fmt: skip
            changed = registered + timedelta(days=rng.uniform(0.5, 20))
            rows["register_versions"].append(
                (risk_id, 2, f"rv-{r}-2", level, category, status, f"Risk {r}", "owner", "mitigate",
                 first, TICKETS_PER_RISK, changed + timedelta(days=7), changed)
            )  # fmt: skip
            if status == "closed" and rng.random() < 0.2:
                rows["register_versions"].append(
                    (risk_id, 3, f"rv-{r}-3", level, category, "reopened", f"Risk {r}", "owner",
                     "mitigate", first, TICKETS_PER_RISK, None, changed + timedelta(days=3))
                )  # fmt: skip
            for step, role in enumerate(["team_lead", "support_manager", "risk_management"]):
                escalation_id = f"E-{r}-{step}"
                due = first + timedelta(minutes=2)
                rows["escalation_notices"].append(
                    (f"en-{r}-{step}", escalation_id, risk_id, level, step, role, "initial", due,
                     due + timedelta(minutes=30 * (6 - level)), None, 1)
                )  # fmt: skip
                if rng.random() < 0.9:
                    rows["escalation_acks"].append(
                        (f"ea-{r}-{step}", escalation_id, risk_id, role, f"{role}-1",
                         due + timedelta(minutes=rng.expovariate(1 / 25)), None)
                    )  # fmt: skip
    return rows


async def load(
    connection: asyncpg.Connection, schema: str, rows: dict[str, list[tuple[Any, ...]]]
) -> None:
    columns = {
        "flagged_tickets": ["ticket_id", "first_flagged_at", "last_flagged_at", "channel", "product",
                            "customer_segment", "cluster_id"],
        "tickets": ["ticket_id", "channel", "product", "first_seen_at", "last_event_at", "closed_at"],
        "clusters": ["cluster_id", "size", "distinct_customers", "surging", "first_seen_at",
                     "last_flagged_at", "product"],
        "risk_classifications": ["event_id", "risk_id", "level", "previous_level", "category",
                                 "cluster_id", "title", "ticket_count", "first_reported_at",
                                 "flagged_at", "classified_at", "overridden"],
        "ticket_risks": ["ticket_id", "risk_id"],
        "cluster_risks": ["cluster_id", "risk_id"],
        "register_versions": ["risk_id", "version", "event_id", "level", "category", "status",
                              "title", "owner", "treatment", "first_reported_at", "ticket_count",
                              "next_review_at", "updated_at"],
        "escalation_notices": ["event_id", "escalation_id", "risk_id", "level", "step",
                               "target_role", "reason", "due_at", "ack_due_at", "timeframe_due_at",
                               "attempt"],
        "escalation_acks": ["event_id", "escalation_id", "risk_id", "role", "acknowledged_by",
                            "acknowledged_at", "decision"],
    }  # fmt: skip
    for table, records in rows.items():
        await connection.copy_records_to_table(
            table, records=records, columns=columns[table], schema_name=schema
        )
    await connection.execute("ANALYZE")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    period = parse_month(args.month)
    previous = previous_month(period)
    now = period.end + timedelta(hours=7)
    schema = f"bench_reporting_{uuid.uuid4().hex[:8]}"
    with database_url() as url:
        await migrate(url, schema, "riskrelay.reporting")
        connection = await asyncpg.connect(
            url, server_settings={"search_path": f'"{schema}",public'}
        )
        try:
            started = time.perf_counter()
            with console.status(f"generating {args.tickets:,} flagged tickets…"):
                rows = generate(args.tickets, period, previous, args.seed)
            generated = time.perf_counter() - started
            started = time.perf_counter()
            with console.status("loading with COPY…"):
                await load(connection, schema, rows)
            loaded = time.perf_counter() - started
            in_month = await connection.fetchval(
                "SELECT count(*) FROM flagged_tickets WHERE first_flagged_at >= $1 AND first_flagged_at < $2",
                period.start, period.end,
            )  # fmt: skip
            timings: dict[str, list[float]] = {}
            report_size: dict[str, int] = {}
            for fmt in (ReportFormat.JSON, ReportFormat.HTML):
                for _ in range(args.repeat):
                    with console.status(f"monthly report as {fmt.value}…"):
                        rendered = await produce(connection, "monthly", period, fmt, now)
                    timings.setdefault(fmt.value, []).append(rendered.seconds)
                    report_size[fmt.value] = len(rendered.body.encode())
            report = json.loads(
                (await produce(connection, "monthly", period, ReportFormat.JSON, now)).body
            )
        finally:
            if not args.keep_schema:
                with contextlib.suppress(Exception):
                    await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
            else:
                console.print(f"kept schema {schema}")
            await connection.close()
    return {
        "benchmark": "reporting_monthly",
        "month": period.label,
        "flagged_tickets_in_month": in_month,
        "flagged_tickets_total": len(rows["flagged_tickets"]),
        "rows": {name: len(items) for name, items in rows.items()},
        "generate_seconds": round(generated, 2),
        "load_seconds": round(loaded, 2),
        "render_seconds": {
            fmt: {
                "first": round(values[0], 3),
                "best": round(min(values), 3),
                "runs": [round(v, 3) for v in values],
            }
            for fmt, values in timings.items()
        },
        "report_bytes": report_size,
        "report_checks": {
            "flagged_tickets": report["flagged_tickets"],
            "near_misses": report["near_misses"]["total"],
            "recurring_issues": report["recurring_issues"]["total"],
            "escalation_steps": report["escalation_timeliness_total"]["steps"],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "measured_at": datetime.now(UTC).isoformat(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tickets", type=int, default=1_000_000, help="flagged tickets in the month"
    )
    parser.add_argument("--month", default="2026-11")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-schema", action="store_true", help="keep the data for EXPLAIN")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    table = Table(
        title=f"Monthly Risk Report {result['month']}: {result['flagged_tickets_in_month']:,} flagged tickets in the month"
    )
    table.add_column("format")
    table.add_column("first (s)", justify="right")
    table.add_column("best (s)", justify="right")
    table.add_column("size", justify="right")
    for fmt, figures in result["render_seconds"].items():
        table.add_row(
            fmt,
            f"{figures['first']:.3f}",
            f"{figures['best']:.3f}",
            f"{result['report_bytes'][fmt]:,} B",
        )
    console.print(table)
    console.print(
        f"generated in {result['generate_seconds']} s, loaded (COPY) in {result['load_seconds']} s; checks: {result['report_checks']}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "reporting_monthly.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["render_seconds"]))


if __name__ == "__main__":
    main()
