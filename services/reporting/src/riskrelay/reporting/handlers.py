"""Reporting edges: every topic into the read model, reports over HTTP, the live dashboard and
the background tasks (dashboard refresh, consumer lag, scheduled reports).

Report endpoints are role-checked bearer-token APIs (deny by default). The dashboard is for
on-call operators: it accepts the same tokens (header, or once as ``?token=`` which is turned
into an HttpOnly SameSite=Strict cookie and removed from the address) unless the operator sets
``RISKRELAY_REPORTING_DASHBOARD__PUBLIC=true`` to serve it read-only without one.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from aiokafka import ConsumerRecord
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from prometheus_client import Counter, Gauge

from riskrelay.reporting import store
from riskrelay.reporting.console import (
    build_console_router,
    build_sign_in_failures_router,
    build_users_router,
    close_escalator_client,
    open_escalator_client,
)
from riskrelay.reporting.console_feedback import build_feedback_router
from riskrelay.reporting.console_links import build_console_links_router
from riskrelay.reporting.console_tokens import build_token_exchange_router
from riskrelay.reporting.dashboard import LagMonitor, ack_window, dashboard_view
from riskrelay.reporting.generate import RenderMetrics, ReportKind, file_name, produce
from riskrelay.reporting.ingest import apply_events, checked_decoder
from riskrelay.reporting.oidc import keep_provider_keys_fresh
from riskrelay.reporting.periods import (
    PeriodError,
    month_of,
    parse_month,
    parse_week,
    previous_month,
    previous_week,
    week_of,
)
from riskrelay.reporting.render import ReportFormat, environment
from riskrelay.reporting.scheduler import Clock, Scheduler, SystemClock
from riskrelay.reporting.settings import ReportingSettings
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import Principal, require_roles
from riskrelay.shared.envelope import CloudEvent
from riskrelay.shared.events import Role
from riskrelay.shared.kafka import OutgoingEvent, Received
from riskrelay.shared.logging import get_logger
from riskrelay.shared.topics import DLQ_SUFFIX, MAIN_TOPICS, TopicSpec

log = get_logger(__name__)

REPORT_ROLES = (
    Role.RISK_MANAGEMENT,
    Role.SUPPORT_MANAGER,
    Role.TEAM_LEAD,
    Role.SUPPORT_DIRECTOR,
    Role.ANALYST,
)
DASHBOARD_COOKIE = "riskrelay_dashboard"
DATABASE_ERRORS = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
)


def decoder_of(spec: TopicSpec) -> Callable[[bytes], CloudEvent[Any]]:
    """The topic's envelope class (from the topic registry) plus the read model's checks."""
    if spec.envelope is None:
        raise ValueError(f"{spec.name} carries no events: its records are counted, not decoded")
    return checked_decoder(spec.envelope)


def _settings(context: ServiceContext) -> ReportingSettings:
    settings = context.settings
    return settings if isinstance(settings, ReportingSettings) else ReportingSettings()


def clock_of(context: ServiceContext) -> Clock:
    """The service's time source; tests replace ``context.state["clock"]`` before start-up."""
    clock: Clock = context.state.setdefault("clock", SystemClock())
    return clock


# ---------------------------------------------------------------------------------------------
# Consuming
# ---------------------------------------------------------------------------------------------


def _header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    """A header as text PostgreSQL can store (a NUL would fail the batch for good, and a dead
    letter of a dead letter has nowhere to go)."""
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode(errors="replace").replace("\x00", "")
    return None


def _int_header(record: ConsumerRecord[bytes, bytes], name: str) -> int | None:
    raw = _header(record, name)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def dead_letter_row(record: ConsumerRecord[bytes, bytes], prefix: str) -> store.DeadLetterRow:
    """Where a dead letter is and which source record it stands for (from its ``dlq_*``
    headers; a header that is missing or malformed is left out, never guessed)."""
    source = _header(record, "dlq_source_topic") or record.topic.removesuffix(DLQ_SUFFIX)
    failed_at: datetime | None = None
    raw_time = _header(record, "dlq_failed_at")
    if raw_time:
        try:
            failed_at = datetime.fromisoformat(raw_time)
        except ValueError:
            failed_at = None
    if failed_at is not None and failed_at.tzinfo is None:
        failed_at = failed_at.replace(tzinfo=UTC)
    source_partition = _int_header(record, "dlq_source_partition")
    source_offset = _int_header(record, "dlq_source_offset")
    if source_partition is None or source_offset is None:
        source_partition = source_offset = None
    group = _header(record, "dlq_consumer_group")
    return store.DeadLetterRow(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        source_topic=source.removeprefix(prefix),
        failed_at=failed_at,
        source_partition=source_partition,
        source_offset=source_offset,
        consumer_group=group.removeprefix(prefix) if group else None,
    )


def accept_anything(raw: bytes) -> bytes:
    """Dead letters are counted, not read: any bytes are fine."""
    return raw


def configure_consumers(context: ServiceContext, applied: Counter) -> None:
    prefix = context.settings.kafka.topic_prefix

    def mark_applied() -> None:
        context.state["read_model_updated_at"] = clock_of(context).now()

    async def apply_batch(batch: list[Received[CloudEvent[Any]]]) -> list[OutgoingEvent]:
        async with context.db.acquire() as connection, connection.transaction():
            count = await apply_events(connection, [item.event for item in batch])
        if count:
            applied.labels(batch[0].record.topic).inc(count)
            mark_applied()
        return []

    async def record_dead_letters(batch: list[Received[bytes]]) -> list[OutgoingEvent]:
        rows = [dead_letter_row(item.record, prefix) for item in batch]
        async with context.db.acquire() as connection, connection.transaction():
            count = await store.apply_dead_letters(connection, rows)
        if count:
            applied.labels(batch[0].record.topic).inc(count)
            mark_applied()
        return []

    for spec in MAIN_TOPICS:
        context.consume(spec, decoder_of(spec), apply_batch)
    for spec in MAIN_TOPICS:
        context.consume(spec.dlq, accept_anything, record_dead_letters)


# ---------------------------------------------------------------------------------------------
# Reports over HTTP
# ---------------------------------------------------------------------------------------------

ReportReader = Annotated[Principal, Depends(require_roles(*REPORT_ROLES))]
FormatQuery = Annotated[
    ReportFormat, Query(alias="format", description="json, html, md (Markdown) or csv.")
]


def build_report_router(context: ServiceContext, metrics: RenderMetrics) -> APIRouter:
    router = APIRouter(prefix="/v1/reports", tags=["reports"])

    async def respond(kind: ReportKind, label: str | None, fmt: ReportFormat) -> Response:
        now = clock_of(context).now()
        try:
            if kind == "weekly":
                period = parse_week(label) if label else previous_week(week_of(now))
            else:
                period = parse_month(label) if label else previous_month(month_of(now))
        except PeriodError as error:
            raise HTTPException(422, str(error)) from error
        try:
            rendered = await produce(context.db, kind, period, fmt, now, metrics)
        except DATABASE_ERRORS as error:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, "the reporting database is unavailable"
            ) from error
        return Response(
            rendered.body,
            media_type=fmt.media_type,
            headers={
                "Content-Disposition": f'inline; filename="{file_name(kind, period, fmt)}"',
                "Cache-Control": "no-store",
                "X-Report-Empty": "true" if rendered.report.empty else "false",
            },
        )

    @router.get(
        "/weekly",
        summary="Weekly Risk Summary for an ISO week (default: the last full week).",
        responses={422: {"description": "malformed week or unknown format"}},
    )
    async def weekly(
        principal: ReportReader,
        fmt: FormatQuery = ReportFormat.JSON,
        week: Annotated[
            str | None, Query(description="ISO week, e.g. 2026-W47.", max_length=16)
        ] = None,
    ) -> Response:
        return await respond("weekly", week, fmt)

    @router.get(
        "/monthly",
        summary="Monthly Risk Report for a calendar month (default: the last full month).",
        responses={422: {"description": "malformed month or unknown format"}},
    )
    async def monthly(
        principal: ReportReader,
        fmt: FormatQuery = ReportFormat.JSON,
        month: Annotated[
            str | None, Query(description="Month, e.g. 2026-11.", max_length=16)
        ] = None,
    ) -> Response:
        return await respond("monthly", month, fmt)

    return router


# ---------------------------------------------------------------------------------------------
# Dashboard
# ---------------------------------------------------------------------------------------------


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def dashboard_principal(context: ServiceContext, token: str | None) -> Principal:
    """Deny by default: a token of a reporting role (or admin), unless the dashboard is public."""
    if token is None:
        if _settings(context).dashboard.public:
            return Principal(subject="anonymous", role=Role.ANALYST)
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "the dashboard needs a token: open /dashboard?token=<token of a reporting role>",
        )
    principal = context.tokens.lookup(token)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "unknown token")
    if not principal.roles & {*REPORT_ROLES, Role.ADMIN}:
        held = ", ".join(role.value for role in principal.ordered_roles())
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"roles {held} may not view the dashboard")
    return principal


def build_dashboard_router(context: ServiceContext) -> APIRouter:
    router = APIRouter(tags=["dashboard"])
    settings = _settings(context).dashboard

    @router.get(
        "/dashboard", summary="The live risk dashboard (HTML, updates itself).", response_model=None
    )
    async def page(request: Request, token: str | None = None) -> Response:
        if token is not None:
            dashboard_principal(context, token)
            redirect = RedirectResponse("/dashboard", status_code=status.HTTP_303_SEE_OTHER)
            redirect.set_cookie(
                DASHBOARD_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                secure=settings.secure_cookie,
                path="/",
                max_age=12 * 3600,
            )
            return redirect
        try:
            dashboard_principal(context, _bearer(request) or request.cookies.get(DASHBOARD_COOKIE))
        except HTTPException as error:
            return HTMLResponse(
                f"<!DOCTYPE html><title>Dashboard</title><p>{error.detail}</p>",
                status_code=error.status_code,
            )
        nonce = secrets.token_urlsafe(16)
        body = (
            environment()
            .get_template("dashboard.html.j2")
            .render(
                nonce=nonce,
                data_url="/v1/dashboard.json",
                refresh_seconds=settings.refresh_seconds,
                window_hours=settings.window_hours,
            )
        )
        return HTMLResponse(
            body,
            headers={
                "Content-Security-Policy": (
                    f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline';"
                    " connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"
                ),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )

    @router.get("/v1/dashboard.json", summary="The dashboard's figures (JSON).")
    async def figures(request: Request) -> JSONResponse:
        dashboard_principal(context, _bearer(request) or request.cookies.get(DASHBOARD_COOKIE))
        view = context.state.get("dashboard")
        if view is None:
            view = await refresh_dashboard(context)
        return JSONResponse(view.model_dump(mode="json"), headers={"Cache-Control": "no-store"})

    return router


async def refresh_dashboard(context: ServiceContext) -> Any:
    settings = _settings(context).dashboard
    now = clock_of(context).now()
    monitor: LagMonitor = context.state["lag_monitor"]
    async with context.db.acquire() as connection:
        inputs = await store.dashboard_inputs(
            connection, now, now - timedelta(hours=settings.window_hours), ack_window(now)
        )
    view = dashboard_view(
        inputs,
        monitor.latest or monitor.unavailable(),
        now,
        settings.window_hours,
        settings.refresh_seconds,
        context.state.get("read_model_updated_at"),
    )
    gauge: Gauge = context.state["open_risks_gauge"]
    for figure in view.levels:
        gauge.labels(str(figure.level)).set(figure.open_risks)
    context.state["dashboard"] = view
    return view


async def keep_dashboard_fresh(context: ServiceContext) -> None:
    settings = _settings(context).dashboard
    clock = clock_of(context)
    while True:
        try:
            await refresh_dashboard(context)
        except DATABASE_ERRORS as error:
            log.warning("dashboard refresh failed", error=f"{type(error).__name__}: {error}")
        await clock.sleep(settings.refresh_seconds)


async def keep_lag_fresh(context: ServiceContext) -> None:
    monitor: LagMonitor = context.state["lag_monitor"]
    clock = clock_of(context)
    try:
        while True:
            await monitor.refresh(clock.now())
            await clock.sleep(_settings(context).dashboard.lag_refresh_seconds)
    finally:
        await monitor.close()


async def run_scheduler(context: ServiceContext) -> None:
    settings = _settings(context)
    scheduler = Scheduler(
        db=context.db,
        schedule=settings.schedule,
        clock=clock_of(context),
        metrics=context.state["render_metrics"],
    )
    await scheduler.run_forever()


def configure(context: ServiceContext) -> None:
    settings = _settings(context)
    applied = Counter(
        "riskrelay_reporting_events_applied_total",
        "Events (and dead letters) newly applied to the reporting read model.",
        ["topic"],
        registry=context.registry,
    )
    context.state["open_risks_gauge"] = Gauge(
        "riskrelay_reporting_open_risks",
        "Open risks by level (levels 1-2: classified within the last 7 days).",
        ["level"],
        registry=context.registry,
    )
    metrics = RenderMetrics.register(context.registry)
    context.state["render_metrics"] = metrics
    configure_consumers(context, applied)
    context.state["lag_monitor"] = LagMonitor(
        kafka=context.settings.kafka,
        group=context.settings.consumer_group,
        topics=[route.topic for route in context.routes],
        prefix=context.settings.kafka.topic_prefix,
    )
    context.routers.append(build_report_router(context, metrics))
    context.routers.append(build_dashboard_router(context))

    def now() -> datetime:
        return clock_of(context).now()

    context.routers.append(build_console_router(context, settings.console, now))
    context.routers.append(build_console_links_router(context, settings.console, now))
    context.routers.append(build_feedback_router(context, settings.console, now))
    context.routers.append(build_users_router(context, now))
    context.routers.append(build_sign_in_failures_router(context, now))
    context.routers.append(
        build_token_exchange_router(
            context, timedelta(minutes=settings.console.api_token_access_minutes), now
        )
    )

    async def start_console(context: ServiceContext) -> None:
        await open_escalator_client(context, settings.console)

    context.on_startup.append(start_console)
    if context.tokens.oidc is not None:
        provider = context.tokens.oidc

        async def keep_keys_fresh(context: ServiceContext) -> None:
            await keep_provider_keys_fresh(provider, clock_of(context).sleep)

        context.background.append(keep_keys_fresh)
    context.on_shutdown.append(close_escalator_client)
    context.background.append(keep_dashboard_fresh)
    context.background.append(keep_lag_fresh)
    if settings.schedule.enabled:
        context.background.append(run_scheduler)
