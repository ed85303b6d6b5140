"""JSON structured logging (structlog) that carries the correlation id of the event in hand.

Handlers bind ``correlation_id`` / ``event_id`` with :func:`bind_event` so every line logged while
processing an event can be traced across services. Only ids and redacted fields are ever logged:
raw ticket text must not reach logs.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared_processors, structlog.processors.EventRenamer("message"), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.EventRenamer("message"),
                renderer,
            ],
            foreign_pre_chain=[*shared_processors, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty at INFO about every rebalance step; keep its warnings.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    bind_contextvars(service=service)


def bind_event(event_id: str, correlation_id: str | None) -> None:
    """Attach the event in hand to every log line until :func:`unbind_event`."""
    bind_contextvars(event_id=event_id, correlation_id=correlation_id)


def unbind_event() -> None:
    structlog.contextvars.unbind_contextvars("event_id", "correlation_id")


def reset_logging_context(service: str) -> None:
    clear_contextvars()
    bind_contextvars(service=service)


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
