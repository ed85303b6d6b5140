"""The Microsoft Teams channel: a notice as an Adaptive Card, POSTed to an incoming webhook or
a Workflows (Power Automate) URL, which both take a ``message`` with card attachments.

Pure: the delivery worker POSTs the body like any other webhook (same retries, same records).
"""

from __future__ import annotations

from typing import Any

from riskrelay.escalator.notice import LocalDeadline, Notice

ADAPTIVE_CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
# 1.4 is what Teams renders on desktop, web and mobile alike.
ADAPTIVE_CARD_VERSION = "1.4"
_MAX_TEXT = 2_000


def _deadline(deadline: LocalDeadline) -> str:
    hours = ""
    if deadline.business_hours is True:
        hours = ", within business hours"
    elif deadline.business_hours is False:
        hours = ", outside business hours"
    return f"{deadline.text} ({deadline.time_left}{hours})"


def adaptive_card(notice: Notice) -> dict[str, Any]:
    facts = [
        {"title": "Level", "value": f"{notice.level} ({notice.level_label})"},
        {"title": "Category", "value": notice.category},
        {
            "title": "Tickets",
            "value": str(notice.ticket_count)
            if notice.ticket_count is not None
            else "not recorded",
        },
        {
            "title": "Customers",
            "value": (
                str(notice.distinct_customers)
                if notice.distinct_customers is not None
                else "not recorded"
            ),
        },
        {"title": "Role", "value": notice.role},
    ]
    if notice.ack_deadline is not None:
        facts.append({"title": "Acknowledge by", "value": _deadline(notice.ack_deadline)})
    if notice.protocol_deadline is not None:
        facts.append({"title": "Protocol deadline", "value": notice.protocol_deadline.text})
    if notice.missed:
        facts.append({"title": "Missed reminders", "value": notice.missed})
    why_title = "Why it was flagged"
    if notice.indicators:
        why_title += f" ({', '.join(notice.indicators)})"
    actions = [
        {"type": "Action.OpenUrl", "title": link.label, "url": link.url} for link in notice.links
    ]
    if notice.console_url:
        actions.append(
            {
                "type": "Action.OpenUrl",
                "title": "Open my queue",
                "url": f"{notice.console_url}/console/queue",
            }
        )
    card: dict[str, Any] = {
        "$schema": ADAPTIVE_CARD_SCHEMA,
        "type": "AdaptiveCard",
        "version": ADAPTIVE_CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": [
            {
                "type": "TextBlock",
                "text": notice.headline,
                "weight": "Bolder",
                "color": "Attention" if notice.level >= 4 else "Default",
                "wrap": True,
            },
            {
                "type": "TextBlock",
                "text": notice.title,
                "size": "Large",
                "weight": "Bolder",
                "wrap": True,
            },
            {"type": "FactSet", "facts": facts},
            {"type": "TextBlock", "text": why_title, "weight": "Bolder", "wrap": True},
            {
                "type": "TextBlock",
                "text": (notice.why or "(no summary recorded)")[:_MAX_TEXT],
                "wrap": True,
            },
            {
                "type": "TextBlock",
                "text": notice.footer,
                "isSubtle": True,
                "size": "Small",
                "wrap": True,
            },
        ],
    }
    if actions:
        card["actions"] = actions
    return card


def teams_payload(notice: Notice) -> dict[str, Any]:
    """The webhook body: one message with the card attached."""
    return {
        "type": "message",
        "summary": f"{notice.headline}: {notice.title}"[:250],
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": adaptive_card(notice),
            }
        ],
    }
