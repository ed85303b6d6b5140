"""Delivers queued notifications (HTTP POSTs, e-mails over SMTP) with retries; records every
attempt.

Notifications are queued by the timer loop in the transaction that fires their timer. This
worker claims due ones with a lease (``state = 'sending'``, ``lease_until``) and commits the
claim before sending, so no transaction stays open during a slow endpoint; the sweeper re-arms a
delivery whose worker died mid-send. Each attempt is recorded in ``delivery_attempts``; a failed
attempt is retried after :func:`riskrelay.escalator.roster.retry_delay` (exponential backoff,
``Retry-After`` honoured) and after the last one the notification is marked ``failed``: never
dropped silently. A refusal that cannot change (an HTTP 4xx other than throttling, an SMTP 5xx)
is marked ``failed`` at once. E-mails record their SMTP reply code as the attempt's status code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal

import asyncpg
import httpx

from riskrelay.escalator.email_channel import SmtpSender
from riskrelay.escalator.metrics import EscalatorMetrics
from riskrelay.escalator.roster import RetryPolicy, is_retryable_status, retry_delay
from riskrelay.shared.logging import get_logger

log = get_logger(__name__)

Outcome = Literal["delivered", "retry", "failed"]

_CLAIM = """
UPDATE notifications SET state = 'sending', lease_until = $3
WHERE id IN (
    SELECT id FROM notifications
    WHERE state = 'pending' AND next_attempt_at <= $1
    ORDER BY next_attempt_at LIMIT $2
    FOR UPDATE SKIP LOCKED
)
RETURNING id, channel, target, payload::text AS payload, attempts
"""


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    error: str | None
    retry_after: timedelta | None
    duration_ms: float
    protocol: Literal["http", "smtp"] = "http"

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return True  # connection refused, timeout, reset: the endpoint may come back
        if self.protocol == "smtp":
            return 400 <= self.status_code < 500  # 4xx: transient; 5xx: permanent refusal
        return is_retryable_status(self.status_code)


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """``Retry-After`` as seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    with contextlib.suppress(TypeError, ValueError):
        return max(timedelta(0), parsedate_to_datetime(value) - now)
    return None


def attempt_outcome(result: AttemptResult, next_delay: timedelta | None) -> Outcome:
    if result.succeeded:
        return "delivered"
    if result.retryable and next_delay is not None:
        return "retry"
    return "failed"


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: httpx.AsyncClient,
        *,
        retry: RetryPolicy,
        metrics: EscalatorMetrics,
        clock: Callable[[], datetime],
        batch_size: int = 50,
        idle_interval: float = 0.2,
        lease: timedelta = timedelta(minutes=2),
        random_unit: Callable[[], float] = random.random,
        smtp: Mapping[str, SmtpSender] | None = None,
    ) -> None:
        self._pool = pool
        self._smtp = dict(smtp or {})
        self._client = client
        self._retry = retry
        self._metrics = metrics
        self._clock = clock
        self._batch_size = batch_size
        self._idle_interval = idle_interval
        self._lease = lease
        self._random_unit = random_unit
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                sent = await self.deliver_due()
                failures = 0
            except (asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as error:
                failures += 1
                log.warning("delivery worker failed; retrying", error=repr(error))
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
                continue
            if sent < self._batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_interval)
                self._wake.clear()

    async def deliver_due(self) -> int:
        """Claim the due notifications, send them concurrently, record each attempt."""
        now = self._clock()
        rows = await self._pool.fetch(_CLAIM, now, self._batch_size, now + self._lease)
        if rows:
            await asyncio.gather(*(self._deliver(row) for row in rows))
        return len(rows)

    async def _deliver(self, row: asyncpg.Record) -> None:
        if row["channel"] == "email":
            result = await self._send_email(row["payload"])
        else:
            result = await self._send(row["target"], row["payload"])
        attempt = row["attempts"] + 1
        now = self._clock()
        delay = (
            None
            if result.succeeded or not result.retryable
            else retry_delay(
                self._retry,
                attempt,
                random_unit=self._random_unit(),
                retry_after=result.retry_after,
            )
        )
        outcome = attempt_outcome(result, delay)
        error = result.error or (
            None if result.succeeded else f"HTTP {result.status_code} from the endpoint"
        )
        async with self._pool.acquire() as connection, connection.transaction():
            await connection.execute(
                "INSERT INTO delivery_attempts (notification_id, attempt, channel, target,"
                " status_code, error, outcome, attempted_at, duration_ms)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                " ON CONFLICT (notification_id, attempt) DO NOTHING",
                row["id"],
                attempt,
                row["channel"],
                row["target"],
                result.status_code,
                error,
                outcome,
                now,
                result.duration_ms,
            )
            await connection.execute(
                "UPDATE notifications SET attempts = $2, last_error = $3, lease_until = NULL,"
                " state = $4, next_attempt_at = $5, finished_at = $6 WHERE id = $1",
                row["id"],
                attempt,
                error,
                "pending" if outcome == "retry" else outcome,
                now + delay if delay is not None and outcome == "retry" else now,
                None if outcome == "retry" else now,
            )
        self._metrics.deliveries.labels(row["channel"], outcome).inc()
        if outcome == "failed":
            log.error(
                "notification undeliverable; recorded as failed",
                notification_id=row["id"],
                channel=row["channel"],
                attempts=attempt,
                error=error,
            )

    async def _send_email(self, payload: str) -> AttemptResult:
        body = json.loads(payload)
        sender = self._smtp.get(body.get("server", ""))
        if sender is None:
            # The roster changed since the notice was queued: no retry can help (554 is SMTP's
            # "transaction failed", recorded as a permanent refusal).
            return AttemptResult(
                status_code=554,
                error=f"no e-mail channel {body.get('server')!r} in the roster any more",
                retry_after=None,
                duration_ms=0.0,
                protocol="smtp",
            )
        reply = await sender.send(body, self._clock())
        return AttemptResult(
            status_code=reply.code,
            error=reply.error,
            retry_after=None,
            duration_ms=reply.duration_ms,
            protocol="smtp",
        )

    async def _send(self, target: str, payload: str) -> AttemptResult:
        started = time.perf_counter()
        try:
            response = await self._client.post(
                target,
                content=payload.encode(),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as error:
            return AttemptResult(
                status_code=None,
                error=f"{type(error).__name__}: {error}"[:1_000],
                retry_after=None,
                duration_ms=(time.perf_counter() - started) * 1000,
            )
        return AttemptResult(
            status_code=response.status_code,
            error=None,
            retry_after=parse_retry_after(response.headers.get("Retry-After"), self._clock()),
            duration_ms=(time.perf_counter() - started) * 1000,
        )
