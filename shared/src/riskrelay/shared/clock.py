"""The wall clock of a running service, and how a test sets it.

Domain code takes the time as an argument; where a service's edge needs "now" (an HTTP request,
a timer loop, a default query window), it asks the clock kept in its context's ``state`` under
:data:`CLOCK`: the system clock unless a test put another one there. A test then dates its
events at fixed times and sets the service's time beside them, so it passes on any date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""

CLOCK = "clock"
"""The key of a service's clock in ``ServiceContext.state``."""


def system_clock() -> datetime:
    return datetime.now(UTC)


def now_of(state: Mapping[str, Any]) -> datetime:
    """The time by the clock in ``state`` (a service context's state), read on every call so a
    test can move the time of a running app."""
    clock: Clock = state.get(CLOCK, system_clock)
    return clock()
