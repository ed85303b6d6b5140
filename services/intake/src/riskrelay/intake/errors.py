"""Typed rejections of intake's pure domain code.

Every error names the field (or rule) at fault and a reason a person can act on, so the handler
can answer a webhook with 422 or dead-letter a Kafka message with a message that explains itself
instead of a stack trace. They all derive from ``ValueError`` so generic "bad input" handling
catches them too.
"""

from __future__ import annotations

from collections.abc import Iterable


class IntakeRejection(ValueError):
    """Input intake refuses to process; ``field`` says where, ``reason`` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FieldTooLargeError(IntakeRejection):
    """A text field is over its configured size limit; intake never truncates silently."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(field, f"is {size} characters long, over the limit of {limit}")
        self.size = size
        self.limit = limit


class UnknownVocabularyError(IntakeRejection):
    """A channel or priority value that no canonical value or synonym matches."""

    def __init__(self, field: str, value: str, allowed: Iterable[str]) -> None:
        self.value = value
        self.allowed = tuple(sorted(allowed))
        super().__init__(
            field, f"unknown value {value!r}; expected one of {', '.join(self.allowed)}"
        )


class WebhookMappingError(IntakeRejection):
    """A helpdesk webhook payload lacks a field (or has one of the wrong shape)."""


class RulePackError(ValueError):
    """A rule pack file does not validate; names the file and, when known, the rule id."""

    def __init__(self, source: str, reason: str, rule_id: str | None = None) -> None:
        where = f"{source}: rule {rule_id!r}" if rule_id else source
        super().__init__(f"{where}: {reason}")
        self.source = source
        self.rule_id = rule_id
        self.reason = reason
