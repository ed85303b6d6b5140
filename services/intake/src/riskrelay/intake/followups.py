"""Follow-ups: a comment or update on a known ticket is flagged again only if it adds something.

Every event of a ticket is assessed in full, but downstream (classification, escalation) must
not hear the same indicators twice for one ticket. So intake remembers the indicators each ticket
was already flagged with and emits a new ``ticket-flagged`` only when an event brings an
indicator the ticket did not have, or when the agent raised the level of their Risk Flag (a
human saying "this is worse than I thought" must reach the classifier even though the
AGENT_RISK_FLAG indicator itself is not new).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from riskrelay.shared.events import Indicator, RiskLevel

_ORDER = {indicator: position for position, indicator in enumerate(Indicator)}


def ordered(indicators: Iterable[Indicator]) -> list[Indicator]:
    """Distinct indicators in the protocol's order (stable output for events and tests)."""
    return sorted(set(indicators), key=_ORDER.__getitem__)


@dataclass(frozen=True, slots=True)
class FollowUpDecision:
    new_indicators: list[Indicator]
    risk_flag_raised: bool
    all_indicators: list[Indicator]

    @property
    def emit(self) -> bool:
        """Whether this event should produce a ``ticket-flagged`` event."""
        return bool(self.new_indicators) or self.risk_flag_raised


def decide_follow_up(
    current: Iterable[Indicator],
    known: Iterable[Indicator],
    *,
    current_risk_flag_level: RiskLevel | None = None,
    known_risk_flag_level: RiskLevel | None = None,
) -> FollowUpDecision:
    """Compare this event's indicators with those the ticket was flagged with before.

    ``known`` is empty for a ticket intake has never flagged, so its first flag is all new.
    ``all_indicators`` is the union, which the caller stores as the ticket's new known set.
    """
    current_set = set(current)
    known_set = set(known)
    raised = (
        current_risk_flag_level is not None
        and known_risk_flag_level is not None
        and current_risk_flag_level > known_risk_flag_level
    )
    return FollowUpDecision(
        new_indicators=ordered(current_set - known_set),
        risk_flag_raised=raised,
        all_indicators=ordered(current_set | known_set),
    )
