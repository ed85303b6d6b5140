"""The dev stack's notification inbox: a webhook receiver for the escalator's demo roster.

The escalator POSTs each notification (generic webhook, Slack or PagerDuty shape) to
``/<channel>/<role>``; the inbox appends one JSON line per notification to its file and serves
``/`` (a page listing them, newest first) and ``/notifications.json``. ``riskrelay dev up``
starts it and writes the roster that points at it (:func:`demo_roster`).
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
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


def demo_roster(base_url: str) -> dict[str, Any]:
    """The escalator roster of the demo: every channel type, every URL on the inbox."""
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
    return {
        "source": "riskrelay-demo",
        "roles": roles,
        "delivery": {"initial_delay": "1s", "max_delay": "30s", "max_attempts": 5},
    }


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
