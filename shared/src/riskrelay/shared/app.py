"""The one app factory: a FastAPI app that owns a FastStream KafkaBroker and the service's I/O.

Every service calls :func:`create_service_app` with its settings and a ``configure`` function.
``configure`` runs at creation time (nothing is connected yet, so the AsyncAPI and OpenAPI
documents can be generated offline); it registers the service's consumers, HTTP routes and
background tasks on the :class:`ServiceContext`. Start-up then happens in the lifespan, in an
order that never consumes before the service can act on what it reads:

1. topics ensured (idempotent), 2. database pool opened and migrations applied,
3. producer started, 4. service ``on_startup`` hooks, 5. broker (consumers) started,
6. background tasks started. Shutdown runs the reverse. Each step is bounded by
``startup_step_timeout_s``: a step that hangs is logged and fails start-up (the process exits
non-zero and its supervisor restarts it) instead of leaving a process that never serves.

Endpoints every service has: ``/healthz`` (alive), ``/readyz`` (broker and database answer),
``/metrics`` (Prometheus, with FastStream's middleware), ``/docs/asyncapi`` and
``/docs/asyncapi.json`` (events: built by :mod:`riskrelay.shared.asyncapi` from what
``configure`` registered with :meth:`ServiceContext.consume` and
:meth:`ServiceContext.publishes`), ``/docs`` and ``/openapi.json`` (HTTP).

FastStream's own FastAPI integration is deprecated as of 0.7, so the broker is driven from the
FastAPI lifespan instead; the result is the same pair of documents with one less moving part.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from faststream.kafka import KafkaBroker
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.specification.asyncapi.site import get_asyncapi_html
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from pydantic import BaseModel

from riskrelay.shared.asyncapi import Document, Registrations, build_document
from riskrelay.shared.auth import TokenRegistry
from riskrelay.shared.kafka import (
    BatchConsumer,
    ConsumerMetrics,
    Decoder,
    EventProducer,
    OutgoingEvent,
    Processor,
    TopicRoute,
    aiokafka_client_options,
    create_broker,
)
from riskrelay.shared.logging import configure_logging, get_logger
from riskrelay.shared.migrations import migrate
from riskrelay.shared.outbox import Outbox
from riskrelay.shared.settings import ServiceSettings, load_settings
from riskrelay.shared.topics import ALL_TOPICS, TopicSpec, ensure_topics, topic_name
from riskrelay.shared.worker import WorkerLoop

log = get_logger(__name__)

Hook = Callable[["ServiceContext"], Awaitable[None]]
BackgroundTask = Callable[["ServiceContext"], Awaitable[None]]


@dataclass
class ServiceContext:
    """Everything a service's handlers need, created once per process and passed in."""

    settings: ServiceSettings
    broker: KafkaBroker
    producer: EventProducer
    registry: CollectorRegistry
    consumer_metrics: ConsumerMetrics
    tokens: TokenRegistry
    uses_database: bool
    pool: asyncpg.Pool | None = None
    routers: list[APIRouter] = field(default_factory=list)
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    background: list[BackgroundTask] = field(default_factory=list)
    routes: list[TopicRoute[Any]] = field(default_factory=list)
    outbox: Outbox | None = None
    state: dict[str, Any] = field(default_factory=dict)
    openapi_models: list[type[BaseModel]] = field(default_factory=list)
    """Models referenced from hand-written ``openapi_extra`` request bodies
    (``#/components/schemas/<Name>``) that FastAPI would not otherwise document."""
    consumed: list[TopicSpec] = field(default_factory=list)
    published: list[TopicSpec] = field(default_factory=list)

    def publishes(self, spec: TopicSpec) -> str:
        """Declare (in ``configure``) that this service publishes to ``spec``; returns its
        physical name. The service's AsyncAPI document lists exactly these send operations."""
        if spec not in self.published:
            self.published.append(spec)
        return self.topic(spec)

    def topic(self, spec: TopicSpec) -> str:
        """Physical name of a topic this service publishes to (with the deployment's prefix).

        Only declared topics have one, so no code path publishes where the service's published
        contract does not say it does."""
        if spec not in self.published:
            raise LookupError(
                f"{self.settings.service_name} publishes to {spec.name} without declaring it:"
                f" declare it in configure with context.publishes(...), so the service's"
                " AsyncAPI document lists the send operation"
            )
        return topic_name(spec, self.settings.kafka.topic_prefix)

    @property
    def db(self) -> asyncpg.Pool:
        if self.pool is None:
            raise RuntimeError("database pool is not open (service not started?)")
        return self.pool

    def consume(
        self,
        spec: TopicSpec,
        decode: Decoder[Any],
        process: Processor[Any],
        *,
        decode_on: WorkerLoop | None = None,
    ) -> None:
        """Consume ``spec`` in batches with at-least-once delivery and dead-lettering;
        ``decode_on``: a worker loop for a decoder that costs CPU (see :class:`TopicRoute`).

        All topics a service consumes share one consumer (see :class:`BatchConsumer`)."""
        self.consumed.append(spec)
        self.routes.append(
            TopicRoute(
                topic_name(spec, self.settings.kafka.topic_prefix), decode, process, decode_on
            )
        )

    def registrations(self) -> Registrations:
        return Registrations(consumes=tuple(self.consumed), publishes=tuple(self.published))

    def _mark_published(self, events: list[OutgoingEvent]) -> None:
        assert self.outbox is not None
        self.outbox.published(item.event.id for item in events)

    @property
    def stalled(self) -> str | None:
        """Why the consumer is considered stuck (see :func:`_watch_consumer`), if it is."""
        reason: str | None = self.state.get("consumer_stalled")
        return reason

    def subscribe_consumer(self) -> BatchConsumer | None:
        if not self.routes:
            return None
        consumer = BatchConsumer(
            routes=self.routes,
            producer=self.producer,
            metrics=self.consumer_metrics,
            consumer_group=self.settings.consumer_group,
            max_attempts=self.settings.kafka.max_attempts,
            on_published=self._mark_published if self.outbox is not None else None,
        )
        consumer.subscribe(self.broker, self.settings.kafka)
        return consumer


def _asyncapi(context: ServiceContext, title: str, version: str, description: str) -> Document:
    return Document(
        build_document(
            title=title,
            version=version,
            description=description,
            settings=context.settings,
            registrations=context.registrations(),
        )
    )


async def _relay_outbox(context: ServiceContext) -> None:
    """Publish outbox rows a crash left unpublished (see :mod:`riskrelay.shared.outbox`)."""
    assert context.outbox is not None
    pending = Gauge(
        "riskrelay_outbox_pending",
        "Outbox rows not yet published to the broker.",
        registry=context.registry,
    )
    try:
        await context.outbox.run_relay(context.db, pending=pending)
    finally:
        context.registry.unregister(pending)


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query (``RESET ALL``, ``UNLISTEN *``,
    unlock advisory locks...): services use only transaction-scoped settings and locks, so that
    query is one more round trip per batch for nothing. An open transaction is still rolled back
    by asyncpg before this runs."""


class StartupTimeout(RuntimeError):
    """A start-up step did not finish in time; the lifespan fails so the process exits."""


STARTUP_PROGRESS_INTERVAL_S = 15.0

StepResult = TypeVar("StepResult")


async def _start_step(
    step: str, action: Awaitable[StepResult], timeout: float | None
) -> StepResult:
    """Await one start-up step, saying what it waits for while it is slow, and give up loudly.

    Every step waits on something outside the process (the broker's group coordinator for the
    consumer join, PostgreSQL for the pool), and none of the clients bounds those waits: a
    process that cannot start would otherwise hang silently and never be restarted. Failing the
    lifespan makes uvicorn exit non-zero, so the supervisor starts a fresh process. ``timeout``
    None: no limit, only the progress lines.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    work = asyncio.ensure_future(action)
    try:
        while True:
            remaining = math.inf if timeout is None else started + timeout - loop.time()
            if remaining <= 0:
                break
            done, _ = await asyncio.wait(
                {work}, timeout=min(STARTUP_PROGRESS_INTERVAL_S, remaining)
            )
            if done:
                return work.result()
            waited = loop.time() - started
            if timeout is None or waited < timeout:
                log.warning("start-up still waiting", step=step, waited_s=round(waited))
    finally:
        if not work.done():
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
    log.error(
        "start-up step did not finish; exiting so the supervisor restarts the process",
        step=step,
        timeout_s=timeout,
    )
    raise StartupTimeout(f"start-up step {step!r} did not finish in {timeout or 0:.0f} s")


def _terminate() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


async def _group_lag(
    probe: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> tuple[int, dict[TopicPartition, int]]:
    ends = await probe.end_offsets(partitions)
    committed = {tp: (await probe.committed(tp)) or 0 for tp in partitions}
    return sum(max(0, ends[tp] - committed[tp]) for tp in partitions), committed


def _assignment_state(context: ServiceContext) -> str:
    """Whether the stalled consumer holds partitions: none means it is stuck (re)joining the
    group, some means a batch is not finishing; the two need different fixes."""
    owned = 0
    for subscriber in context.broker.subscribers:
        consumer = getattr(subscriber, "consumer", None)
        if consumer is not None:
            with contextlib.suppress(Exception):
                owned += len(consumer.assignment())
    return f"this member holds {owned} partitions"


async def _watch_consumer(context: ServiceContext) -> None:
    """Liveness of the consumer: records wait for the group, yet it commits nothing.

    Health checks that ask the broker and the database cannot see a consumer that stopped
    consuming (seen after a rebalance followed by a database restart). A probe that carries the
    group id but never joins the group reads the group's committed offsets and the partitions'
    ends; when records wait and nothing was committed for ``stall_timeout_s``, ``/healthz``
    fails and the process terminates itself, so whatever supervises it (Kubernetes, compose,
    systemd) starts a fresh one that rejoins the group. Work is never lost: the offsets were
    not committed, so the new process re-reads the records.
    """
    settings = context.settings
    timeout = settings.kafka.stall_timeout_s
    topics = [route.topic for route in context.routes]
    if timeout <= 0 or not topics:
        return
    interval = max(1.0, min(10.0, timeout / 6))
    probe = AIOKafkaConsumer(
        **aiokafka_client_options(settings.kafka),
        group_id=settings.consumer_group,
        enable_auto_commit=False,
    )
    await probe.start()
    loop = asyncio.get_running_loop()
    last_committed: dict[TopicPartition, int] | None = None
    stuck_since: float | None = None
    try:
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(interval):
                    partitions = [
                        TopicPartition(topic, p)
                        for topic in topics
                        for p in sorted(probe.partitions_for_topic(topic) or ())
                    ]
                    if not partitions:
                        await probe._client.force_metadata_update()
                        continue
                    lag, committed = await _group_lag(probe, partitions)
            except (TimeoutError, KafkaError, OSError):
                continue  # the broker is unavailable: readiness reports that, not liveness
            now = loop.time()
            if lag > 0 and committed == last_committed:
                stuck_since = stuck_since if stuck_since is not None else now
            else:
                stuck_since = None
                context.state.pop("consumer_stalled", None)
            last_committed = committed
            if stuck_since is not None and now - stuck_since >= timeout:
                reason = (
                    f"consumer group {settings.consumer_group} has {lag} records waiting and"
                    f" committed nothing for {now - stuck_since:.0f} s"
                    f" ({_assignment_state(context)})"
                )
                context.state["consumer_stalled"] = reason
                log.error("consumer stalled; terminating so a fresh process rejoins", reason=reason)
                await asyncio.sleep(interval)  # a probe can see the failing /healthz first
                on_stall: Callable[[], None] = context.state.get("on_stall", _terminate)
                on_stall()
                return
    finally:
        await probe.stop()


async def _run_background(context: ServiceContext, task: BackgroundTask) -> None:
    """Keep a background loop alive: log and restart it after an unexpected error."""
    while True:
        try:
            await task(context)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task failed; restarting in 1 s", task=task.__name__)
            await asyncio.sleep(1.0)


async def _ensure_all_topics(settings: ServiceSettings) -> None:
    admin = AIOKafkaAdminClient(**aiokafka_client_options(settings.kafka))
    await admin.start()
    try:
        created = await ensure_topics(
            admin, ALL_TOPICS, settings.kafka.topic_prefix, settings.kafka.replication_factor
        )
        if created:
            log.info("created topics", topics=created)
    finally:
        await admin.close()


async def _release_after_failed_start(context: ServiceContext) -> None:
    """Close what a failed start-up opened (bounded: the process is about to exit anyway)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            await context.broker.stop()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            await context.producer.stop()
    if context.pool is not None:
        context.pool.terminate()
        context.pool = None


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str,
    version: str = "0.1.0",
    configure: Callable[[ServiceContext], None],
    migrations_package: str | None = None,
) -> FastAPI:
    """Build the service's ASGI app. Nothing connects until the app's lifespan starts."""
    registry = CollectorRegistry(auto_describe=True)
    broker = create_broker(
        settings.kafka,
        client_id=f"riskrelay-{settings.service_name}",
        middlewares=[KafkaPrometheusMiddleware(registry=registry, app_name=settings.service_name)],
    )
    context = ServiceContext(
        settings=settings,
        broker=broker,
        producer=EventProducer(settings.kafka, client_id=f"riskrelay-{settings.service_name}"),
        registry=registry,
        consumer_metrics=ConsumerMetrics(registry),
        tokens=TokenRegistry.from_settings(settings.auth),
        uses_database=migrations_package is not None,
    )
    if context.uses_database:
        context.outbox = Outbox(context.producer)
        context.background.append(_relay_outbox)
    ready_gauge = Gauge(
        "riskrelay_ready", "1 when the service's dependencies answer.", registry=registry
    )
    configure(context)
    if context.subscribe_consumer() is not None:
        context.background.append(_watch_consumer)
    tasks: list[asyncio.Task[None]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.service_name, settings.log_level, settings.log_format)
        log.info("starting", bootstrap=settings.kafka.bootstrap)
        step_timeout = settings.startup_step_timeout_s
        try:
            if settings.kafka.ensure_topics:
                await _start_step("ensure topics", _ensure_all_topics(settings), step_timeout)
            if migrations_package is not None:
                dsn = settings.database.url.get_secret_value()
                # Unbounded: a migration rewriting a large table may take long, and one cut
                # short would be rolled back and started again at every restart.
                applied = await _start_step(
                    "apply migrations",
                    migrate(dsn, settings.db_schema, migrations_package),
                    None,
                )
                if applied:
                    log.info("applied migrations", migrations=applied)
                context.pool = await _start_step(
                    "open database pool",
                    asyncpg.create_pool(
                        dsn,
                        min_size=settings.database.pool_min,
                        max_size=settings.database.pool_max,
                        command_timeout=settings.database.command_timeout_s,
                        server_settings={
                            "search_path": f'"{settings.db_schema}",public',
                            "idle_in_transaction_session_timeout": str(
                                int(settings.database.idle_in_transaction_timeout_s * 1000)
                            ),
                        },
                        reset=_keep_session,
                    ),
                    step_timeout,
                )
            await _start_step("start producer", context.producer.start(), step_timeout)
            for hook in context.on_startup:
                await _start_step(f"start-up hook {hook.__name__}", hook(context), step_timeout)
            # The consumer's start returns once the group assigned it partitions.
            await _start_step(
                f"start consumers (join group {settings.consumer_group})",
                broker.start(),
                step_timeout,
            )
        except StartupTimeout:
            await _release_after_failed_start(context)
            raise
        tasks.extend(
            asyncio.create_task(_run_background(context, task), name=task.__name__)
            for task in context.background
        )
        log.info("started", http_port=settings.http.port)
        try:
            yield
        finally:
            log.info("stopping")
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            tasks.clear()
            await broker.stop()
            for hook in reversed(context.on_shutdown):
                await hook(context)
            await context.producer.stop()
            if context.pool is not None:
                await context.pool.close()
                context.pool = None
            log.info("stopped")

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.context = context
    app.state.token_registry = context.tokens

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in item["loc"]), "message": item["msg"]}
            for item in error.errors()
        ]
        return JSONResponse({"detail": "invalid request", "errors": problems}, status_code=422)

    @app.exception_handler(asyncpg.exceptions.DataError)
    async def data_error(request: Request, error: asyncpg.exceptions.DataError) -> JSONResponse:
        # Input PostgreSQL cannot store or compare (a NUL character, an out-of-range number,
        # text that is not a valid value of the column's type) is the caller's error, not ours.
        if isinstance(
            error,
            asyncpg.exceptions.CharacterNotInRepertoireError
            | asyncpg.exceptions.UntranslatableCharacterError,
        ):
            detail = "invalid input: text must not contain the NUL character (U+0000)"
        else:
            detail = f"invalid input: {error.args[0] if error.args else type(error).__name__}"
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/healthz", tags=["operations"], summary="Liveness: the process is up.")
    async def healthz() -> dict[str, str]:
        if context.stalled:
            return JSONResponse(  # type: ignore[return-value]
                {"status": "failing", "consumer": context.stalled}, status_code=503
            )
        dead = [t.get_name() for t in tasks if t.done()]
        if dead:
            return JSONResponse(  # type: ignore[return-value]
                {"status": "failing", "stopped_tasks": ", ".join(dead)}, status_code=503
            )
        return {"status": "ok", "service": settings.service_name}

    @app.get("/readyz", tags=["operations"], summary="Readiness: broker and database answer.")
    async def readyz() -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            checks["kafka"] = "ok" if await broker.ping(timeout=2.0) else "unreachable"
        except Exception as error:
            checks["kafka"] = f"error: {type(error).__name__}"
        if context.uses_database:
            try:
                if context.pool is None:
                    checks["database"] = "not connected"
                else:
                    async with asyncio.timeout(2.0):
                        await context.pool.fetchval("SELECT 1")
                    checks["database"] = "ok"
            except Exception as error:
                checks["database"] = f"error: {type(error).__name__}"
        ready = all(v == "ok" for v in checks.values())
        ready_gauge.set(1 if ready else 0)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics.")
    async def metrics() -> Response:
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs/asyncapi.json", tags=["operations"], summary="AsyncAPI document (JSON).")
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(_asyncapi(context, title, version, description).content)

    @app.get("/docs/asyncapi", tags=["operations"], summary="AsyncAPI document (HTML).")
    async def asyncapi_html() -> HTMLResponse:
        page = _asyncapi(context, title, version, description)
        return HTMLResponse(get_asyncapi_html(page, try_it_out_path=None))

    for router in context.routers:
        app.include_router(router)
    _document_extra_models(app, context.openapi_models)
    return app


def _document_extra_models(app: FastAPI, models: list[type[BaseModel]]) -> None:
    if not models:
        return
    generate = app.openapi

    def openapi_with_models() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, definition in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, definition)
                schemas.setdefault(model.__name__, schema)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi_with_models  # type: ignore[method-assign]


def asyncapi_document(app: FastAPI) -> dict[str, Any]:
    """The AsyncAPI document of a service app, without starting it (for `docs/` generation)."""
    context: ServiceContext = app.state.context
    return _asyncapi(context, app.title, app.version, app.description).content


ServiceSettingsT = TypeVar("ServiceSettingsT", bound=ServiceSettings)


def lower_cpu_priority(nice: int) -> None:
    """Add ``nice`` to this process's niceness (see ``ServiceSettings.cpu_nice``)."""
    if nice > 0:
        os.nice(nice)


def run_service(
    create_app: Callable[[ServiceSettingsT], FastAPI], settings_class: type[ServiceSettingsT]
) -> None:
    """A service's ``main``: settings from the environment, the app, then serve.

    Creating the app loads and validates the service's files (rule pack, policies, calendar,
    roster) and connects to nothing, so a ``ValueError`` or ``OSError`` there is a configuration
    error: it stops start-up with exit code 2 and the message (file, field or rule, reason).
    """
    settings = load_settings(settings_class)
    try:
        app = create_app(settings)
    except (ValueError, OSError) as error:
        sys.stderr.write(f"invalid {settings.service_name} configuration: {error}\n")
        raise SystemExit(2) from error
    serve(app, settings)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Run a service app with uvicorn until SIGINT/SIGTERM (graceful: lifespan shutdown runs)."""
    import uvicorn

    lower_cpu_priority(settings.cpu_nice)

    uvicorn.run(
        app,
        host=settings.http.host,
        port=settings.http.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
    )
