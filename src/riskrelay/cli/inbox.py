"""The dev stack's notification inbox: a webhook receiver for the escalator's demo roster.

The escalator POSTs each notification (generic webhook, Slack or PagerDuty shape) to
``/<channel>/<role>``; the inbox appends one JSON line per notification to its file and serves
``/`` (a page listing them, newest first) and ``/notifications.json``. ``riskrelay dev up``
starts it and writes the roster that points at it (:func:`demo_roster`).

The inbox also runs an SMTP receiver (aiosmtpd, on the inbox port + 19: 8025 by default) for the
demo people's e-mails: each message is listed like the other notifications (channel ``email``,
the recipient as the role column) and kept whole as a ``.eml`` file in ``mail/`` beside the
inbox file.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from riskrelay.shared.events import Role

MAX_BODY_BYTES = 1_000_000
# A Slack message names the level in its text and the risk in a "*Risk*" field.
_SLACK_LEVEL = re.compile(r"Level (\d)\b")
_SLACK_RISK = re.compile(r"\*Risk\*\\n`([^`]+)`")
PAGE_LIMIT = 500

# Who hears what in the demo: the chain on chat, Risk Management by webhook (its GRC tool)
# and paged for Critical risks, the Support Director on chat for Critical breaches.
_DEMO_CHANNELS: dict[Role, tuple[tuple[str, int], ...]] = {
    Role.AGENT: (("slack", 1),),
    Role.TEAM_LEAD: (("slack", 1),),
    Role.SUPPORT_MANAGER: (("slack", 1),),
    Role.SUPPORT_DIRECTOR: (("slack", 5),),
    Role.RISK_MANAGEMENT: (("webhook", 3), ("pagerduty", 5)),
}


INBOX_DEFAULT_PORT = 8006
SMTP_PORT_OFFSET = 19
"""The inbox's SMTP receiver listens on the inbox port + 19 (8006 -> 8025)."""


def demo_smtp_port(inbox_port: int) -> int:
    return inbox_port + SMTP_PORT_OFFSET


def demo_roster(
    base_url: str, *, console_url: str | None = None, smtp_port: int | None = None
) -> dict[str, Any]:
    """The escalator roster of the demo: every channel type, every URL on the inbox, and each
    role's console user (``team-lead@example.org``, ...) gets e-mail through the inbox's SMTP
    receiver, with acknowledgement links into the console."""
    roles: dict[str, Any] = {}
    for role, channels in _DEMO_CHANNELS.items():
        entries: list[dict[str, Any]] = []
        for kind, min_level in channels:
            entry: dict[str, Any] = {
                "type": kind,
                "url": f"{base_url}/{kind}/{role.value}",
                "min_level": min_level,
            }
            if kind == "pagerduty":
                entry["routing_key"] = f"demo-{role.value}"
            entries.append(entry)
        name = role.value.replace("_", " ").title()
        roles[role.value] = {"people": [{"name": f"Demo {name}"}], "channels": entries}
    roster: dict[str, Any] = {
        "source": "riskrelay-demo",
        "roles": roles,
        "delivery": {"initial_delay": "1s", "max_delay": "30s", "max_attempts": 5},
    }
    host, _, port = base_url.split("//", 1)[-1].partition(":")
    inbox_port = int(port.split("/")[0]) if port else INBOX_DEFAULT_PORT
    smtp_port = smtp_port or demo_smtp_port(inbox_port)
    # The dev stack puts the inbox right after the five services: reporting (the console) is
    # on the port before it.
    console_url = console_url or f"http://{host}:{inbox_port - 1}"
    roster["channels"] = {
        "demo-mail": {
            "type": "email",
            "host": host,
            "port": smtp_port,
            "security": "none",  # a local receiver; real servers use starttls or tls
            "from_address": "riskrelay@example.org",
            "from_name": "riskrelay demo",
        }
    }
    roster["people"] = {}
    for role in _DEMO_CHANNELS:
        key = role.value.replace("_", "-")
        roster["people"][key] = {
            "name": f"Demo {role.value.replace('_', ' ').title()}",
            "email": f"{key}@example.org",  # the console user `riskrelay dev up` creates
            "channels": ["demo-mail"],
        }
        roles[role.value]["people"] = [key]
    roster["links"] = {"console_url": console_url, "valid_for": "72h"}
    return roster


_SUBJECT_LEVEL = re.compile(r"^\[riskrelay L(\d)\]")


def mail_notification(raw: bytes, received_at: datetime) -> ReceivedNotification:
    """An e-mail as the inbox lists it: subject as headline, recipient in the role column."""
    message = message_from_bytes(raw, policy=email_policy.default)
    subject = str(message.get("Subject", ""))
    level = _SUBJECT_LEVEL.match(subject)
    text = ""
    if isinstance(message, EmailMessage) and (part := message.get_body(("plain",))) is not None:
        text = str(part.get_content())
    return ReceivedNotification(
        received_at=received_at,
        channel="email",
        role=str(message.get("To", "")),
        headline=subject,
        risk_id=str(message.get("X-Riskrelay-Risk") or "") or None,
        level=int(level.group(1)) if level else None,
        body={"from": str(message.get("From", "")), "to": str(message.get("To", "")),
              "subject": subject, "message_id": str(message.get("Message-ID", "")), "text": text},
    )  # fmt: skip


class MailReceiver:
    """aiosmtpd handler: each message appended to the inbox file and saved as ``.eml``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mail_dir = path.parent / "mail"
        self.mail_dir.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or b""
        if len(raw) > MAX_BODY_BYTES:
            return "552 message larger than the inbox keeps"
        received_at = datetime.now(UTC)
        notification = mail_notification(raw, received_at)
        name = f"{received_at:%Y%m%dT%H%M%S%f}-{abs(hash(notification.body['message_id'])):x}.eml"
        (self.mail_dir / name).write_bytes(raw)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(notification.model_dump_json() + "\n")
        return "250 Message accepted"


class ReceivedNotification(BaseModel):
    """One received notification, as stored in the inbox file."""

    received_at: datetime
    channel: str
    role: str
    headline: str
    risk_id: str | None
    level: int | None
    body: Any


def _as_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def describe(channel: str, body: Any) -> tuple[str, str | None, int | None]:
    """Headline, risk id and level of a notification body of any of the roster's shapes."""
    if not isinstance(body, Mapping):
        return json.dumps(body)[:200], None, None
    if channel == "slack":
        text = str(body.get("text", ""))
        level_found = _SLACK_LEVEL.match(text)
        risk_found = _SLACK_RISK.search(json.dumps(body.get("blocks", [])))
        return (
            text,
            risk_found.group(1) if risk_found else None,
            int(level_found.group(1)) if level_found else None,
        )
    if channel == "pagerduty":
        payload = body.get("payload")
        payload = payload if isinstance(payload, Mapping) else {}
        details = payload.get("custom_details")
        details = details if isinstance(details, Mapping) else {}
        return (
            str(payload.get("summary", "")),
            _as_str(details.get("risk_id")),
            _as_int(details.get("level")),
        )
    data = body.get("data")
    data = data if isinstance(data, Mapping) else {}
    level = _as_int(data.get("level"))
    role = str(data.get("target_role", "?")).replace("_", " ")
    reason = str(data.get("reason", "?")).replace("_", " ")
    headline = f"Level {level} escalation to {role}: {reason}"
    if title := _as_str(data.get("title")):
        headline += f": {title}"
    return headline, _as_str(data.get("risk_id")), level


def read_notifications(path: Path, limit: int | None = None) -> list[ReceivedNotification]:
    """The inbox file's notifications, newest first (a torn last line is skipped)."""
    if not path.exists():
        return []
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            found.append(ReceivedNotification.model_validate_json(line))
        except ValueError:
            continue
    found.reverse()
    return found[:limit] if limit is not None else found


def render_page(notifications: list[ReceivedNotification], total: int, path: Path) -> str:
    rows = "\n".join(
        "<tr>"
        f"<td>{n.received_at.isoformat(timespec='seconds')}</td>"
        f"<td>{html.escape(n.channel)}</td><td>{html.escape(n.role)}</td>"
        f"<td>{'' if n.level is None else n.level}</td>"
        f"<td>{html.escape(n.risk_id or '')}</td><td>{html.escape(n.headline)}</td>"
        "</tr>"
        for n in notifications
    )
    shown = f"the newest {len(notifications)} of " if len(notifications) < total else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>riskrelay notifications</title>
<style>body{{font:14px system-ui,sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left}}</style></head>
<body><h1>Escalation notifications</h1>
<p id="count">{shown}{total} notification(s) the escalator delivered to the demo roster,
newest first; stored in <code>{html.escape(str(path))}</code>. JSON:
<a href="/notifications.json">/notifications.json</a>.</p>
<table><thead><tr><th>received (UTC)</th><th>channel</th><th>role</th><th>level</th>
<th>risk</th><th>headline</th></tr></thead><tbody>
{rows}
</tbody></table></body></html>
"""


def create_inbox_app(path: Path) -> FastAPI:
    """The inbox: POST ``/<channel>/<role>`` stores a notification; GET ``/`` lists them."""
    app = FastAPI(title="riskrelay notification inbox", docs_url=None, redoc_url=None)
    lock = asyncio.Lock()
    path.parent.mkdir(parents=True, exist_ok=True)

    @app.post("/{channel}/{role}", status_code=202)
    async def receive(channel: str, role: str, request: Request) -> dict[str, str]:
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise HTTPException(413, f"larger than {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(raw)
        except ValueError as error:
            raise HTTPException(400, f"not JSON: {error}") from error
        headline, risk_id, level = describe(channel, body)
        notification = ReceivedNotification(
            received_at=datetime.now(UTC), channel=channel, role=role,
            headline=headline, risk_id=risk_id, level=level, body=body,
        )  # fmt: skip
        async with lock:
            with path.open("a", encoding="utf-8") as out:
                out.write(notification.model_dump_json() + "\n")
        return {"status": "stored"}

    @app.get("/", response_class=HTMLResponse)
    async def page() -> str:
        everything = read_notifications(path)
        return render_page(everything[:PAGE_LIMIT], len(everything), path)

    @app.get("/notifications.json")
    async def listing() -> list[ReceivedNotification]:
        return read_notifications(path, PAGE_LIMIT)

    @app.get("/healthz")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
