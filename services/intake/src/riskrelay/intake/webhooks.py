"""Helpdesk webhook payloads -> the upstream contract (:class:`TicketEvent`).

Two real shapes are supported:

Zendesk
    * *Event webhooks* (``{"type": "zen:event-type:ticket.created", "id", "time",
      "detail": {ticket fields}, "event": {...}}``), where ``detail`` carries ``id``, ``subject``,
      ``description``, ``via.channel``, ``requester_id``, ``assignee_id``, ``priority``,
      ``status``, ``tags``, ``brand_id``, ``created_at``, ``updated_at`` and a
      ``comment_added`` event carries ``event.comment`` (``body``, ``author.is_staff``).
    * *Trigger/automation JSON* an admin writes with placeholders, conventionally
      ``{"ticket": {"id", "subject", "description", "via": {"channel"} or "Web Form",
      "requester": {"id"}, "priority", "tags" (list or space-separated), "assignee": {"id"},
      "status", "created_at", "updated_at", "comment": {...}}}``.

Zammad
    The default trigger webhook payload ``{"ticket": {...}, "article": {...}}``: ``ticket`` has
    ``id``, ``number``, ``title``, ``group.name``, ``priority.name`` (``"2 normal"``),
    ``state``, ``customer``, ``owner``, ``created_at``, ``updated_at``, ``article_count``;
    ``article`` has ``id``, ``body``, ``content_type``, ``sender`` (``Customer``/``Agent``/
    ``System``), ``type`` (``email``, ``phone``, ``web``, ``note``, ``twitter status`` ...)
    and ``internal``. An article inside ``ticket`` is accepted too.

Person names, where a payload carries them, go to ``customer.name`` and ``agent_name`` so that
intake can redact them from the text (they are never copied into an outgoing event): Zendesk's
``requester.name`` and ``assignee.name`` (trigger JSON) and a comment author's ``name`` (staff:
the agent; otherwise the customer), Zammad's ``customer`` and ``owner`` (``firstname`` and
``lastname``, or ``name``) and the display name of the article's ``from``. An e-mail address
is never taken for a name.

Neither helpdesk knows riskrelay's product or segment, so they come from configuration
(:class:`MappingOptions`): tags (``product:<name>``, ``segment:<name>``), the Zendesk brand id,
the Zammad group, or a default. An agent's Risk Flag is read from tags ``risk_level_<1-5>``
and ``risk_category_<category>``. Customer ids are the helpdesk's numeric user ids; if only
an e-mail address is present it is replaced by a SHA-256 pseudonym, never passed on.

Event ids: the Zendesk event id, or the Zammad ``X-Zammad-Delivery`` header when the caller
passes it; otherwise a deterministic id from ticket, article and ``updated_at``, so a retried
delivery maps to the same id and is deduplicated. A payload missing what the contract needs
raises :class:`WebhookMappingError` naming the field (``ticket.updated_at``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from riskrelay.intake.errors import IntakeRejection, WebhookMappingError
from riskrelay.intake.normalization import (
    CHANNELS,
    DEFAULT_SIZE_LIMITS,
    PRIORITIES,
    SizeLimits,
    enforce_size_limit,
    vocabulary_key,
)
from riskrelay.shared.events import (
    TICKET_EVENT_TYPES,
    RiskCategory,
    RiskFlag,
    RiskLevel,
    TicketData,
    TicketEvent,
    TicketEventKind,
)


@dataclass(frozen=True)
class MappingOptions:
    """How one helpdesk installation's tickets map onto riskrelay's vocabulary."""

    default_product: str | None = None
    default_segment: str = "unknown"
    product_tag_prefix: str = "product:"
    segment_tag_prefix: str = "segment:"
    vulnerable_tags: frozenset[str] = frozenset({"vulnerable", "vulnerable_customer"})
    product_by_brand: Mapping[str, str] = field(default_factory=dict)
    product_from_group: bool = True
    size_limits: SizeLimits = DEFAULT_SIZE_LIMITS


DEFAULT_MAPPING_OPTIONS = MappingOptions()

# Keys are Zendesk's API names (via.channel) and the display names trigger placeholders render.
_ZENDESK_CHANNELS = {
    "phone call (incoming)": "phone",
    "phone call (outgoing)": "phone",
    "voicemail": "phone",
    "text": "chat",
    "chat transcript": "chat",
    "web service": "api",
    "web service (api)": "api",
    "mobile sdk": "web",
    "twitter dm": "social",
    "twitter direct message": "social",
    "facebook post": "social",
    "facebook private message": "social",
    "closed ticket": "api",
    "native_messaging": "chat",
    "messaging": "chat",
    "chat_transcript": "chat",
    "mobile_sdk": "web",
    "mobile": "web",
    "web_widget": "web",
    "help_center": "web",
    "any_channel": "api",
    "rule": "api",
    "closed_ticket": "api",
    "sample_ticket": "api",
    "side_conversation": "email",
    "voice": "phone",
    "phone_call_inbound": "phone",
    "phone_call_outbound": "phone",
}
_ZAMMAD_CHANNELS = {
    "note": "web",
    "twitter status": "social",
    "twitter direct-message": "social",
    "facebook feed post": "social",
    "facebook feed comment": "social",
    "telegram personal-message": "chat",
    "whatsapp message": "chat",
}
_RISK_LEVEL_TAG = re.compile(r"^risk[_:\-]?(?:level|flag)[_:\-]?([1-5])$")
_RISK_CATEGORY_TAG = re.compile(r"^risk[_:\-]?category[_:\-]?([a-z_]+)$")


# ---------------------------------------------------------------------------------------------
# Field access with errors that name the field
# ---------------------------------------------------------------------------------------------


def _get(payload: Mapping[str, Any], path: str) -> Any:
    """``payload[a][b]...`` for ``path`` ``"a.b"``; ``None`` when absent."""
    current: Any = payload
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _require(payload: Mapping[str, Any], path: str, *, label: str | None = None) -> Any:
    value = _get(payload, path)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise WebhookMappingError(label or path, "is missing")
    return value


def _text(value: Any, label: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise WebhookMappingError(label, f"must be text, not {type(value).__name__}")
    return str(value)


def _first(payload: Mapping[str, Any], *paths: str) -> Any:
    for path in paths:
        value = _get(payload, path)
        if value is not None and value != "":
            return value
    return None


def _timestamp(value: Any, label: str) -> datetime:
    if not isinstance(value, str):
        raise WebhookMappingError(label, "is missing" if value is None else "must be a timestamp")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as error:
        raise WebhookMappingError(label, f"is not an ISO 8601 timestamp: {value!r}") from error
    if moment.tzinfo is None:
        raise WebhookMappingError(label, f"has no time zone: {value!r}")
    return moment


def _tags(value: Any, label: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [_text(tag, label) for tag in value if tag is not None and str(tag).strip()]
    raise WebhookMappingError(label, "must be a list or a space-separated string")


def _pseudonym(email: str) -> str:
    digest = hashlib.sha256(email.strip().casefold().encode()).hexdigest()[:24]
    return f"email-sha256:{digest}"


def _prefixed_tag(tags: list[str], prefix: str) -> str | None:
    for tag in tags:
        if tag.casefold().startswith(prefix.casefold()) and len(tag) > len(prefix):
            return tag[len(prefix) :]
    return None


def _risk_flag_from_tags(tags: list[str]) -> RiskFlag | None:
    level: int | None = None
    category: RiskCategory | None = None
    for tag in tags:
        lowered = tag.casefold()
        if match := _RISK_LEVEL_TAG.match(lowered):
            level = max(level or 0, int(match.group(1)))
        elif (match := _RISK_CATEGORY_TAG.match(lowered)) and match.group(1) in {
            c.value for c in RiskCategory
        }:
            category = RiskCategory(match.group(1))
    if level is None:
        return None
    return RiskFlag(level=RiskLevel(level), category=category, description="Set by ticket tag.")


def _normalized_channel(raw: str, upstream_table: Mapping[str, str], label: str) -> str:
    translated = upstream_table.get(raw.strip().casefold(), raw)
    translated = upstream_table.get(vocabulary_key(translated), translated)
    try:
        return CHANNELS.normalize(translated)
    except IntakeRejection as error:
        raise WebhookMappingError(label, error.reason) from error


def _normalized_priority(raw: str, label: str) -> str:
    try:
        return PRIORITIES.normalize(raw)
    except IntakeRejection as error:
        raise WebhookMappingError(label, error.reason) from error


def _product(tags: list[str], options: MappingOptions, *candidates: tuple[str, Any]) -> str:
    from_tag = _prefixed_tag(tags, options.product_tag_prefix)
    if from_tag:
        return from_tag
    for _label, value in candidates:
        if value is not None and str(value).strip():
            return str(value).strip()
    if options.default_product:
        return options.default_product
    labels = ", ".join(label for label, _ in candidates)
    raise WebhookMappingError(
        "product",
        f"is missing: no `{options.product_tag_prefix}` tag"
        + (f", no {labels}" if labels else "")
        + " and no default product configured",
    )


def _build_event(
    *,
    event_id: str,
    source: str,
    kind: TicketEventKind,
    time: datetime,
    data: dict[str, Any],
) -> TicketEvent:
    try:
        return TicketEvent(
            id=event_id,
            source=source,
            type=TICKET_EVENT_TYPES[kind],
            time=time,
            subject=str(data["ticket_id"]),
            correlationid=str(data["ticket_id"]),
            data=TicketData.model_validate(data),
        )
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise WebhookMappingError(location or "payload", first["msg"]) from error


def _check_sizes(options: MappingOptions, subject: str, description: str, comment: str) -> None:
    limits = options.size_limits
    enforce_size_limit("subject", subject, limits.subject)
    enforce_size_limit("description", description, limits.description)
    enforce_size_limit("comment.body", comment, limits.comment)


# ---------------------------------------------------------------------------------------------
# Zendesk
# ---------------------------------------------------------------------------------------------

_ZENDESK_EVENT_KINDS = {
    "ticket.created": TicketEventKind.CREATED,
    "ticket.comment_added": TicketEventKind.COMMENTED,
}
_CLOSED_STATES = {"closed", "solved", "merged", "removed"}


def map_zendesk(
    payload: Mapping[str, Any],
    *,
    subdomain: str,
    options: MappingOptions = DEFAULT_MAPPING_OPTIONS,
) -> TicketEvent:
    """Map a Zendesk event webhook or trigger JSON payload onto a :class:`TicketEvent`."""
    if not isinstance(payload, Mapping):
        raise WebhookMappingError("payload", "must be a JSON object")
    source = f"zendesk://{subdomain}"
    event_type = payload.get("type")
    if isinstance(event_type, str) and event_type.startswith("zen:event-type:"):
        return _map_zendesk_event(
            payload, event_type.removeprefix("zen:event-type:"), source, options
        )
    if isinstance(payload.get("ticket"), Mapping):
        return _map_zendesk_trigger(payload, source, options)
    raise WebhookMappingError(
        "ticket", "is missing (neither a Zendesk event webhook nor trigger JSON)"
    )


def _map_zendesk_event(
    payload: Mapping[str, Any], event_type: str, source: str, options: MappingOptions
) -> TicketEvent:
    if not event_type.startswith("ticket."):
        raise WebhookMappingError("type", f"{event_type!r} is not a ticket event")
    detail = _require(payload, "detail")
    ticket_id = _text(_require(payload, "detail.id"), "detail.id")
    comment_body = _text(_get(payload, "event.comment.body"), "event.comment.body")
    status = _text(_get(detail, "status"), "detail.status").casefold()
    kind = _ZENDESK_EVENT_KINDS.get(event_type)
    if kind is None:
        kind = (
            TicketEventKind.CLOSED
            if status in _CLOSED_STATES and "status" in event_type
            else TicketEventKind.UPDATED
        )
    if kind is TicketEventKind.COMMENTED and not comment_body:
        raise WebhookMappingError("event.comment.body", "is missing")
    tags = _tags(_get(detail, "tags"), "detail.tags")
    requester = _first(detail, "requester_id", "requester.id")
    if requester is None:
        raise WebhookMappingError("detail.requester_id", "is missing")
    author_is_staff = _get(payload, "event.comment.author.is_staff")
    subject = _text(_get(detail, "subject"), "detail.subject")
    description = _text(_get(detail, "description"), "detail.description")
    _check_sizes(options, subject, description, comment_body)
    brand = _get(detail, "brand_id")
    data = {
        "ticket_id": ticket_id,
        "subject": subject,
        "description": description,
        "channel": _normalized_channel(
            _text(_require(payload, "detail.via.channel"), "detail.via.channel"),
            _ZENDESK_CHANNELS,
            "detail.via.channel",
        ),
        "customer": _customer(
            str(requester),
            tags,
            options,
            name=None if author_is_staff else _person_name(_get(payload, "event.comment.author")),
        ),
        "product": _product(
            tags, options, ("brand", options.product_by_brand.get(str(brand)) if brand else None)
        ),
        "priority": _normalized_priority(
            _text(_get(detail, "priority"), "detail.priority") or "normal", "detail.priority"
        ),
        "tags": tags,
        "agent_id": _optional_id(_get(detail, "assignee_id")),
        "agent_name": (
            _person_name(_get(payload, "event.comment.author")) if author_is_staff else None
        ),
        "risk_flag": _risk_flag_from_tags(tags),
        "comment": (
            {"author_type": "agent" if author_is_staff else "customer", "body": comment_body}
            if comment_body
            else None
        ),
    }
    return _build_event(
        event_id=_text(_require(payload, "id"), "id"),
        source=source,
        kind=kind,
        time=_timestamp(_first(payload, "time", "detail.updated_at"), "time"),
        data=data,
    )


def _map_zendesk_trigger(
    payload: Mapping[str, Any], source: str, options: MappingOptions
) -> TicketEvent:
    ticket: Mapping[str, Any] = payload["ticket"]
    ticket_id = _text(_require(ticket, "id", label="ticket.id"), "ticket.id")
    updated_at = _text(
        _require(ticket, "updated_at", label="ticket.updated_at"), "ticket.updated_at"
    )
    comment = _first(ticket, "comment", "latest_comment") or _get(payload, "comment")
    comment_body = ""
    comment_author_name: str | None = None
    author_type: Literal["customer", "agent", "system"] = "customer"
    if isinstance(comment, Mapping):
        comment_body = _text(_first(comment, "body", "value", "html_body"), "ticket.comment.body")
        author = _first(comment, "author.role", "author_role", "author_type")
        is_agent = _first(comment, "author.is_staff", "author_is_agent")
        if is_agent is True or str(author).casefold() in {"agent", "admin", "staff"}:
            author_type = "agent"
        comment_author_name = _person_name(_get(comment, "author"))
    elif isinstance(comment, str):
        comment_body = comment
    status = _text(_get(ticket, "status"), "ticket.status").casefold()
    explicit = _text(payload.get("event"), "event").casefold()
    if explicit:
        try:
            kind = TicketEventKind(explicit)
        except ValueError as error:
            raise WebhookMappingError("event", f"unknown event kind {explicit!r}") from error
    elif status in _CLOSED_STATES:
        kind = TicketEventKind.CLOSED
    elif comment_body and _get(ticket, "created_at") != updated_at:
        kind = TicketEventKind.COMMENTED
    elif _get(ticket, "created_at") == updated_at:
        kind = TicketEventKind.CREATED
    else:
        kind = TicketEventKind.UPDATED
    tags = _tags(_get(ticket, "tags"), "ticket.tags")
    requester_id = _first(ticket, "requester.id", "requester_id")
    requester_email = _first(ticket, "requester.email")
    if requester_id is not None:
        customer_id = str(requester_id)
    elif isinstance(requester_email, str):
        customer_id = _pseudonym(requester_email)
    else:
        raise WebhookMappingError("ticket.requester.id", "is missing")
    via = _get(ticket, "via")
    raw_channel = _get(via, "channel") if isinstance(via, Mapping) else via
    subject = _text(_get(ticket, "subject"), "ticket.subject")
    description = _text(_get(ticket, "description"), "ticket.description")
    _check_sizes(options, subject, description, comment_body)
    if raw_channel is None:
        raise WebhookMappingError("ticket.via.channel", "is missing")
    data = {
        "ticket_id": ticket_id,
        "subject": subject,
        "description": description,
        "channel": _normalized_channel(
            _text(raw_channel, "ticket.via.channel"), _ZENDESK_CHANNELS, "ticket.via.channel"
        ),
        "customer": _customer(
            customer_id,
            tags,
            options,
            name=_person_name(_get(ticket, "requester"))
            or (comment_author_name if author_type == "customer" else None),
        ),
        "product": _product(
            tags,
            options,
            ("ticket.product", _get(ticket, "product")),
            ("ticket.brand", _first(ticket, "brand.name", "brand")),
        ),
        "priority": _normalized_priority(
            _text(_get(ticket, "priority"), "ticket.priority") or "normal", "ticket.priority"
        ),
        "tags": tags,
        "agent_id": _optional_id(_first(ticket, "assignee.id", "assignee_id")),
        "agent_name": _person_name(_get(ticket, "assignee"))
        or (comment_author_name if author_type == "agent" else None),
        "risk_flag": _risk_flag_from_tags(tags),
        "comment": {"author_type": author_type, "body": comment_body} if comment_body else None,
    }
    if kind is TicketEventKind.COMMENTED and data["comment"] is None:
        raise WebhookMappingError("ticket.comment.body", "is missing")
    event_id = _first(payload, "event_id", "id")
    return _build_event(
        event_id=_text(event_id, "event_id")
        if event_id is not None
        else f"zendesk:{source.removeprefix('zendesk://')}:{ticket_id}:{updated_at}:{kind.value}",
        source=source,
        kind=kind,
        time=_timestamp(updated_at, "ticket.updated_at"),
        data=data,
    )


def _optional_id(value: Any) -> str | None:
    if value is None or value == "" or value == 0 or value == "0":
        return None
    return str(value)


def _customer(
    customer_id: str, tags: list[str], options: MappingOptions, *, name: str | None = None
) -> dict[str, Any]:
    lowered = {tag.casefold() for tag in tags}
    return {
        "id": customer_id,
        "segment": _prefixed_tag(tags, options.segment_tag_prefix) or options.default_segment,
        "vulnerable": bool(lowered & options.vulnerable_tags),
        "name": name,
    }


_DISPLAY_NAME = re.compile(r'^\s*"?([^"<]*?)"?\s*<[^>]*>\s*$')
_NAME_LIMIT = 256


def _person_name(value: Any) -> str | None:
    """A person's name from a user object (``name``, or ``firstname`` and ``lastname``) or an
    address header (``"Emily Adams <emily@example.com>"``); never an e-mail address."""
    if isinstance(value, Mapping):
        name = value.get("name")
        if not isinstance(name, str) or not name.strip():
            parts = [value.get("firstname"), value.get("lastname")]
            name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
    elif isinstance(value, str):
        header = _DISPLAY_NAME.match(value)
        name = header.group(1) if header else value
    else:
        return None
    name = " ".join(name.split())
    if not name or "@" in name:
        return None
    return name[:_NAME_LIMIT]


# ---------------------------------------------------------------------------------------------
# Zammad
# ---------------------------------------------------------------------------------------------

_ZAMMAD_SENDERS: dict[str, Literal["customer", "agent", "system"]] = {
    "customer": "customer",
    "agent": "agent",
    "system": "system",
}
_ZAMMAD_CLOSED = {"closed", "merged", "removed"}


def _name(value: Any) -> str:
    """Zammad sends related objects either expanded (``{"name": ...}``) or as plain names."""
    if isinstance(value, Mapping):
        return str(value.get("name") or "")
    return "" if value is None else str(value)


def map_zammad(
    payload: Mapping[str, Any],
    *,
    host: str,
    delivery_id: str | None = None,
    options: MappingOptions = DEFAULT_MAPPING_OPTIONS,
) -> TicketEvent:
    """Map a Zammad webhook payload onto a :class:`TicketEvent`.

    ``delivery_id`` is the ``X-Zammad-Delivery`` header; pass it when available.
    """
    if not isinstance(payload, Mapping):
        raise WebhookMappingError("payload", "must be a JSON object")
    ticket = _require(payload, "ticket")
    if not isinstance(ticket, Mapping):
        raise WebhookMappingError("ticket", "must be an object")
    article = payload.get("article") or ticket.get("article")
    if article is not None and not isinstance(article, Mapping):
        raise WebhookMappingError("article", "must be an object")

    internal_id = _text(_require(ticket, "id", label="ticket.id"), "ticket.id")
    ticket_id = _text(_first(ticket, "number") or internal_id, "ticket.number")
    updated_at = _require(ticket, "updated_at", label="ticket.updated_at")
    state = _name(_get(ticket, "state")).casefold()
    tags = _tags(_get(ticket, "tags"), "ticket.tags")

    body = ""
    author_type: Literal["customer", "agent", "system"] = "customer"
    raw_channel = _name(_get(ticket, "create_article_type"))
    if article is not None:
        body = _text(_get(article, "body"), "article.body")
        author_type = _ZAMMAD_SENDERS.get(_name(_get(article, "sender")).casefold(), "customer")
        # The ticket's channel is where it came in; a later article may be an internal note.
        raw_channel = raw_channel or _name(_get(article, "type"))
    if not raw_channel:
        raise WebhookMappingError("article.type", "is missing (and no ticket.create_article_type)")

    article_count = _get(ticket, "article_count")
    first_article = article is not None and (
        article_count in (None, 0, 1) or _get(ticket, "created_at") == _get(article, "created_at")
    )
    if state in _ZAMMAD_CLOSED:
        kind = TicketEventKind.CLOSED
    elif first_article:
        kind = TicketEventKind.CREATED
    elif article is not None and body:
        kind = TicketEventKind.COMMENTED
    else:
        kind = TicketEventKind.UPDATED
    description = body if first_article else ""
    comment_body = "" if first_article else body
    title = _text(_get(ticket, "title"), "ticket.title")
    _check_sizes(options, title, description, comment_body)

    customer = _get(ticket, "customer")
    customer_id = _first(ticket, "customer_id", "customer.id")
    if customer_id is None:
        email = _get(customer, "email") if isinstance(customer, Mapping) else None
        if not isinstance(email, str):
            raise WebhookMappingError("ticket.customer_id", "is missing")
        customer_id = _pseudonym(email)
    owner = _first(ticket, "owner_id", "owner.id")
    priority = re.sub(r"^\d+\s*", "", _name(_get(ticket, "priority"))) or "normal"
    data = {
        "ticket_id": ticket_id,
        "subject": title,
        "description": description,
        "channel": _normalized_channel(raw_channel, _ZAMMAD_CHANNELS, "article.type"),
        "customer": _customer(
            str(customer_id),
            tags,
            options,
            name=_person_name(customer)
            or (_person_name(_get(article or {}, "from")) if author_type == "customer" else None),
        ),
        "product": _product(
            tags,
            options,
            ("ticket.group", _name(_get(ticket, "group")) if options.product_from_group else None),
        ),
        "priority": _normalized_priority(priority, "ticket.priority.name"),
        "tags": tags,
        # Zammad's user 1 is the system placeholder for "nobody".
        "agent_id": None if str(owner) in {"1", "None"} else _optional_id(owner),
        "agent_name": (None if str(owner) in {"1", "None"} else _person_name(_get(ticket, "owner")))
        or (_person_name(_get(article or {}, "from")) if author_type == "agent" else None),
        "risk_flag": _risk_flag_from_tags(tags),
        "comment": {"author_type": author_type, "body": comment_body} if comment_body else None,
    }
    article_id = _get(article, "id") if article is not None else None
    return _build_event(
        event_id=delivery_id
        or f"zammad:{host}:{internal_id}:{article_id if article_id is not None else '-'}:{updated_at}",
        source=f"zammad://{host}",
        kind=kind,
        time=_timestamp(updated_at, "ticket.updated_at"),
        data=data,
    )
