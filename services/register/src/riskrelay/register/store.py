"""Register persistence: the ``risks`` row is the entry, column for column.

Every writer (consumer batches and HTTP requests, in any instance) takes a transaction-scoped
advisory lock per risk id, in sorted order, before reading the entry, so versions of one risk
are written one after the other and never from a stale read. ``save_entry`` still checks the
version it replaces, so a bug that skipped the lock fails loudly instead of losing an update.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from riskrelay.register.domain import ChangeKind, HistoryRecord
from riskrelay.shared.events import (
    EscalationAcknowledged,
    EscalationDue,
    MitigationPlan,
    RiskCategory,
    RiskLevel,
    RiskRegisterEntry,
    RiskStatus,
)
from riskrelay.shared.store import Connection as Connection
from riskrelay.shared.store import LockSpace, lock_keys

_ENTRY_COLUMNS = (
    "risk_id, version, title, redacted_summary, level, category, status, owner,"
    " first_reported_at, last_reported_at, ticket_count, distinct_customers, customer_segments,"
    " products, indicators, policy_version, likelihood, impact, inherent_score, residual_score,"
    " treatment, mitigation_strategy, mitigation_owner, mitigation_target_date, assessment,"
    " communication_template, resolution_verification, prevention_measures, next_review_at,"
    " updated_at, ticket_ids"
)
_SELECT_ENTRIES = f"SELECT {_ENTRY_COLUMNS} FROM risks"
_NOT_ENTRY_FIELDS = frozenset(
    {"mitigation_strategy", "mitigation_owner", "mitigation_target_date", "registered_at"}
)


# What `pool.acquire()` yields, or a plain connection; and anything that can run a query.
Queryable = Connection | asyncpg.Pool


class ConcurrentModification(RuntimeError):
    """The row's version is not the one the change was computed from (a lock was skipped)."""


RISK_LOCKS = LockSpace("register:")


async def lock_risks(connection: Connection, risk_ids: Iterable[str]) -> None:
    await lock_keys(connection, RISK_LOCKS.of(risk_ids))


def entry_from_row(row: asyncpg.Record) -> RiskRegisterEntry:
    mitigation = None
    if row["mitigation_strategy"] is not None:
        mitigation = MitigationPlan(
            strategy=row["mitigation_strategy"],
            owner=row["mitigation_owner"],
            target_date=row["mitigation_target_date"],
        )
    data: dict[str, Any] = {
        name: value for name, value in row.items() if name not in _NOT_ENTRY_FIELDS
    }
    data["mitigation"] = mitigation
    return RiskRegisterEntry.model_validate(data)


def _entry_values(entry: RiskRegisterEntry) -> tuple[Any, ...]:
    plan = entry.mitigation
    return (
        entry.risk_id,
        entry.version,
        entry.title,
        entry.redacted_summary,
        int(entry.level),
        entry.category.value,
        entry.status.value,
        entry.owner,
        entry.first_reported_at,
        entry.last_reported_at,
        entry.ticket_count,
        entry.distinct_customers,
        list(entry.customer_segments),
        list(entry.products),
        [indicator.value for indicator in entry.indicators],
        entry.policy_version,
        entry.likelihood,
        entry.impact,
        entry.inherent_score,
        entry.residual_score,
        entry.treatment.value if entry.treatment else None,
        plan.strategy if plan else None,
        plan.owner if plan else None,
        plan.target_date if plan else None,
        entry.assessment,
        entry.communication_template,
        entry.resolution_verification,
        entry.prevention_measures,
        entry.next_review_at,
        entry.updated_at,
        list(entry.ticket_ids),
    )


async def load_entries(
    connection: Queryable, risk_ids: Iterable[str]
) -> dict[str, RiskRegisterEntry]:
    rows = await connection.fetch(
        f"{_SELECT_ENTRIES} WHERE risk_id = ANY($1::text[])", list(set(risk_ids))
    )
    return {row["risk_id"]: entry_from_row(row) for row in rows}


async def load_entry(connection: Queryable, risk_id: str) -> RiskRegisterEntry | None:
    return (await load_entries(connection, [risk_id])).get(risk_id)


async def load_all_entries(
    connection: Queryable,
) -> dict[str, RiskRegisterEntry]:
    rows = await connection.fetch(f"{_SELECT_ENTRIES} ORDER BY risk_id")
    return {row["risk_id"]: entry_from_row(row) for row in rows}


async def save_entry(
    connection: Connection,
    before: RiskRegisterEntry | None,
    after: RiskRegisterEntry,
    registered_at: datetime,
) -> None:
    """Insert the first version or replace exactly ``before`` with ``after``."""
    columns = _ENTRY_COLUMNS.split(", ")
    values = _entry_values(after)
    if before is None:
        placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 2))
        await connection.execute(
            f"INSERT INTO risks ({_ENTRY_COLUMNS}, registered_at) VALUES ({placeholders})",
            *values,
            registered_at,
        )
        return
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=1))
    status = await connection.execute(
        f"UPDATE risks SET {assignments} WHERE risk_id = $1 AND version = ${len(columns) + 1}",
        *values,
        before.version,
    )
    if status != "UPDATE 1":
        raise ConcurrentModification(
            f"risk {after.risk_id!r} is no longer at version {before.version}"
        )


async def link_tickets(
    connection: Connection,
    risk_id: str,
    ticket_ids: Sequence[str],
    at: datetime,
    cause_event_id: str | None,
) -> None:
    """Link tickets in the given order; a ticket already linked keeps its first link."""
    ordered = list(dict.fromkeys(ticket_ids))
    if ordered:
        await connection.executemany(
            "INSERT INTO risk_tickets (risk_id, ticket_id, linked_at, cause_event_id)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (risk_id, ticket_id) DO NOTHING",
            [(risk_id, ticket_id, at, cause_event_id) for ticket_id in ordered],
        )


async def append_history(
    connection: Connection, records: Sequence[tuple[ChangeKind, HistoryRecord]]
) -> None:
    if records:
        await connection.executemany(
            "INSERT INTO risk_history"
            " (risk_id, version, kind, at, actor, role, cause_event_id, reason, changes)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)",
            [
                (
                    record.risk_id,
                    record.version,
                    kind.value,
                    record.at,
                    record.actor,
                    record.role.value if record.role else None,
                    record.cause_event_id,
                    record.reason,
                    json.dumps(
                        {
                            name: change.model_dump(mode="json")
                            for name, change in record.changes.items()
                        }
                    ),
                )
                for kind, record in records
            ],
        )


@dataclass(frozen=True)
class HistoryRow:
    kind: ChangeKind
    record: HistoryRecord


async def load_history(connection: Queryable, risk_id: str) -> list[HistoryRow]:
    rows = await connection.fetch(
        "SELECT risk_id, version, kind, at, actor, role, cause_event_id, reason,"
        " changes::text AS changes FROM risk_history WHERE risk_id = $1 ORDER BY version",
        risk_id,
    )
    return [
        HistoryRow(
            ChangeKind(row["kind"]),
            HistoryRecord(
                risk_id=row["risk_id"],
                version=row["version"],
                at=row["at"],
                actor=row["actor"],
                role=row["role"],
                cause_event_id=row["cause_event_id"],
                reason=row["reason"],
                changes=json.loads(row["changes"]),
            ),
        )
        for row in rows
    ]


@dataclass(frozen=True)
class TicketLink:
    ticket_id: str
    linked_at: datetime
    cause_event_id: str | None


async def load_ticket_links(connection: Queryable, risk_id: str) -> list[TicketLink]:
    rows = await connection.fetch(
        "SELECT ticket_id, linked_at, cause_event_id FROM risk_tickets WHERE risk_id = $1"
        " ORDER BY link_id",
        risk_id,
    )
    return [TicketLink(row["ticket_id"], row["linked_at"], row["cause_event_id"]) for row in rows]


# ---------------------------------------------------------------------------------------------
# Signals that arrived before their risk was registered
# ---------------------------------------------------------------------------------------------

Signal = EscalationDue | EscalationAcknowledged


@dataclass(frozen=True)
class PendingSignal:
    event_id: str
    at: datetime
    signal: Signal


async def keep_pending_signal(
    connection: Connection, event_id: str, at: datetime, signal: Signal
) -> None:
    kind = "escalation_due" if isinstance(signal, EscalationDue) else "acknowledgement"
    await connection.execute(
        "INSERT INTO pending_signals (event_id, risk_id, kind, at, payload)"
        " VALUES ($1, $2, $3, $4, $5::jsonb) ON CONFLICT (event_id) DO NOTHING",
        event_id,
        signal.risk_id,
        kind,
        at,
        signal.model_dump_json(),
    )


async def take_pending_signals(connection: Connection, risk_id: str) -> list[PendingSignal]:
    """Remove and return the risk's kept signals, in arrival order."""
    rows = await connection.fetch(
        "DELETE FROM pending_signals WHERE risk_id = $1"
        " RETURNING position, event_id, kind, at, payload::text AS payload",
        risk_id,
    )
    signals = []
    for row in sorted(rows, key=lambda r: r["position"]):
        model: type[Signal] = (
            EscalationDue if row["kind"] == "escalation_due" else EscalationAcknowledged
        )
        signals.append(
            PendingSignal(row["event_id"], row["at"], model.model_validate_json(row["payload"]))
        )
    return signals


# ---------------------------------------------------------------------------------------------
# Outbox ordering
# ---------------------------------------------------------------------------------------------


async def risks_with_unpublished_events(
    connection: Connection, topic: str, risk_ids: Iterable[str], published: Sequence[str] = ()
) -> set[str]:
    """Risks with an earlier risk-registered event still unpublished (in flight or left behind).

    A newer version must not overtake it: on a compacted topic the last record per key wins,
    so the newer one is left to the relay, which publishes in outbox order. ``published``
    names rows this process saw acknowledged whose mark is still on its way.
    """
    rows = await connection.fetch(
        "SELECT DISTINCT key FROM outbox WHERE published_at IS NULL AND topic = $1"
        " AND key = ANY($2::text[]) AND event_id <> ALL($3::text[])",
        topic,
        list(set(risk_ids)),
        list(published),
    )
    return {row["key"] for row in rows}


# ---------------------------------------------------------------------------------------------
# Queries for the API and the gauges
# ---------------------------------------------------------------------------------------------


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class PageCursor:
    """Position after the last item of a page in (registered_at DESC, risk_id DESC) order."""

    registered_at: datetime
    risk_id: str

    def encode(self) -> str:
        raw = json.dumps([self.registered_at.isoformat(), self.risk_id]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> PageCursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            registered_at, risk_id = json.loads(raw)
            at = datetime.fromisoformat(registered_at)
        except (binascii.Error, ValueError, TypeError) as error:
            raise InvalidCursor("not a cursor this API returned") from error
        if at.tzinfo is None or not isinstance(risk_id, str):
            raise InvalidCursor("not a cursor this API returned")
        return cls(at, risk_id)


@dataclass(frozen=True)
class RiskFilter:
    """Filters of the list and the export; every given filter must match."""

    levels: Sequence[RiskLevel] = ()
    categories: Sequence[RiskCategory] = ()
    statuses: Sequence[RiskStatus] = ()
    reported_from: datetime | None = None
    reported_to: datetime | None = None
    text: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        if self.levels:
            clauses.append(f"level = ANY({param([int(v) for v in self.levels])}::smallint[])")
        if self.categories:
            clauses.append(f"category = ANY({param([v.value for v in self.categories])}::text[])")
        if self.statuses:
            clauses.append(f"status = ANY({param([v.value for v in self.statuses])}::text[])")
        # A risk is in a period when it was reported during it: its reports overlap the range.
        if self.reported_from is not None:
            clauses.append(f"last_reported_at >= {param(self.reported_from)}")
        if self.reported_to is not None:
            clauses.append(f"first_reported_at < {param(self.reported_to)}")
        if self.text:
            words = param(self.text)
            like = param(
                "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            clauses.append(
                f"(search @@ websearch_to_tsquery('english', {words})"
                f" OR title ILIKE {like} OR risk_id ILIKE {like})"
            )
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


async def list_entries(
    pool: asyncpg.Pool, where: RiskFilter, *, limit: int, after: PageCursor | None
) -> tuple[list[RiskRegisterEntry], PageCursor | None]:
    sql, params = where.where()
    if after is not None:
        params.extend([after.registered_at, after.risk_id])
        keyset = f"(registered_at, risk_id) < (${len(params) - 1}, ${len(params)})"
        sql = f"{sql} AND {keyset}" if sql else f" WHERE {keyset}"
    params.append(limit + 1)
    rows = await pool.fetch(
        f"SELECT {_ENTRY_COLUMNS}, registered_at FROM risks{sql}"
        f" ORDER BY registered_at DESC, risk_id DESC LIMIT ${len(params)}",
        *params,
    )
    page = rows[:limit]
    entries = [entry_from_row(row) for row in page]
    cursor = None
    if len(rows) > limit:
        last = page[-1]
        cursor = PageCursor(last["registered_at"], last["risk_id"])
    return entries, cursor


async def export_entries(pool: asyncpg.Pool, where: RiskFilter) -> list[RiskRegisterEntry]:
    sql, params = where.where()
    rows = await pool.fetch(
        f"{_SELECT_ENTRIES}{sql} ORDER BY registered_at DESC, risk_id DESC", *params
    )
    return [entry_from_row(row) for row in rows]


async def overdue_reviews(pool: asyncpg.Pool, at: datetime) -> list[RiskRegisterEntry]:
    """Open risks whose review is due at ``at`` (or was never scheduled), most overdue first."""
    rows = await pool.fetch(
        f"{_SELECT_ENTRIES} WHERE status <> 'closed'"
        " AND (next_review_at IS NULL OR next_review_at <= $1)"
        " ORDER BY next_review_at NULLS FIRST, risk_id",
        at,
    )
    return [entry_from_row(row) for row in rows]


async def count_overdue_reviews(pool: asyncpg.Pool, at: datetime) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM risks WHERE status <> 'closed'"
        " AND (next_review_at IS NULL OR next_review_at <= $1)",
        at,
    )
    return count


async def count_by_level_and_status(pool: asyncpg.Pool) -> dict[tuple[int, str], int]:
    rows = await pool.fetch("SELECT level, status, count(*) AS n FROM risks GROUP BY level, status")
    return {(row["level"], row["status"]): row["n"] for row in rows}
