"""Replies to Slack clicks through their response_url: the replacement message, the refusal,
the allowed origins, and the background POSTs (against an in-memory transport)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from riskrelay.escalator.domain import StepState
from riskrelay.escalator.links_api import LinkRedemption, LinkStep
from riskrelay.escalator.notice import NoticeLink
from riskrelay.escalator.person_notices import slack_buttons
from riskrelay.escalator.roster import slack_payload
from riskrelay.escalator.settings import SlackSettings
from riskrelay.escalator.slack_interactions import (
    ACK_BLOCK_ID,
    STATUS_BLOCK_ID,
    Body,
    SlackResponder,
    allowed_response_url,
    redemption_line,
    refusal_message,
    replacement_message,
)
from riskrelay.shared.events import (
    EscalationDue,
    EscalationReason,
    ReviewDecision,
    RiskLevel,
    Role,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 10, 9, 5, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")


def due() -> EscalationDue:
    return EscalationDue.model_validate(
        {
            "escalation_id": "0b7f6a52-1d8e-5c1a-9a55-6d1f0c6b2e11",
            "risk_id": "risk-42",
            "level": RiskLevel.HIGH,
            "step": 1,
            "target_role": Role.TEAM_LEAD,
            "reason": EscalationReason.INITIAL,
            "due_at": NOW,
            "ack_due_at": NOW + timedelta(minutes=30),
            "title": "Card numbers <visible> to other customers",
            "plan_version": 1,
        }
    )


def sent_message() -> dict[str, Any]:
    """A person's Slack message as the escalator sends it, with its Acknowledge button."""
    payload = slack_payload(due())
    payload["blocks"].append(slack_buttons((NoticeLink("Acknowledge", "https://c/x", None, "t"),)))
    return payload


def step(**changes: Any) -> LinkStep:
    fields: dict[str, Any] = {
        "escalation_id": "esc-1",
        "risk_id": "risk-42",
        "title": "Card numbers <visible> to other customers",
        "level": RiskLevel.HIGH,
        "role": Role.TEAM_LEAD,
        "kind": "acknowledge",
        "state": StepState.ACKNOWLEDGED,
        "ack_due_at": None,
        "acknowledged_by": "tara@example.org",
        "decision": None,
    }
    return LinkStep.model_validate(fields | changes)


def redemption(status: str = "accepted", **changes: Any) -> LinkRedemption:
    fields: dict[str, Any] = {
        "status": status,
        "late": False,
        "decision": None,
        "channel": "slack",
        "detail": None,
        "step": step(),
        "event_id": None,
    }
    return LinkRedemption.model_validate(fields | changes)


def test_the_button_block_is_the_one_person_notices_adds() -> None:
    assert slack_buttons(())["block_id"] == ACK_BLOCK_ID


def test_the_replacement_keeps_the_message_drops_the_buttons_and_says_who() -> None:
    original = sent_message()
    line = redemption_line(
        redemption(),
        clicker="Tara Lead",
        acknowledged_by=None,
        acknowledged_at=None,
        zone=BERLIN,
        now=NOW,
    )
    assert line == "Acknowledged by Tara Lead at Tue 10 Mar, 10:05 CET"
    reply = replacement_message(original, line)
    assert reply["replace_original"] is True
    assert reply["text"] == f"{line}: {original['text']}"
    *kept, status = reply["blocks"]
    assert kept == original["blocks"][:-1]
    assert not any(block["type"] == "actions" for block in reply["blocks"])
    assert status["block_id"] == STATUS_BLOCK_ID
    assert status["elements"][0]["text"] == f":white_check_mark: *{line}*"


def test_a_second_update_replaces_the_status_line_and_names_are_escaped() -> None:
    first = replacement_message(sent_message(), "Acknowledged by A")
    again = replacement_message(first, "Already acknowledged by <B & C>")
    assert [b.get("block_id") for b in again["blocks"]].count(STATUS_BLOCK_ID) == 1
    assert again["blocks"][-1]["elements"][0]["text"].endswith("by &lt;B &amp; C&gt;*")


def test_without_the_original_message_the_steps_gist_stands_in() -> None:
    reply = replacement_message(None, "Acknowledged by Tara Lead", step())
    [gist, _] = reply["blocks"]
    assert gist["text"]["text"] == (
        "*Card numbers &lt;visible&gt; to other customers*\n`risk-42` · Team Lead"
    )
    assert reply["text"] == "Acknowledged by Tara Lead"


@pytest.mark.parametrize(
    ("outcome", "by", "at", "expected"),
    [
        (
            redemption(decision=ReviewDecision.CONFIRMED, late=True),
            None,
            None,
            "Acknowledged by Sam at Tue 10 Mar, 10:05 CET: confirmed, Risk Management told (late)",
        ),
        (
            redemption("already_closed"),
            "Tara Lead",
            NOW - timedelta(hours=1),
            "Already acknowledged by Tara Lead at Tue 10 Mar, 09:05 CET",
        ),
        (redemption("already_closed"), "Tara Lead", None, "Already acknowledged by Tara Lead"),
        (
            redemption(
                "already_closed",
                step=step(state=StepState.CANCELLED, acknowledged_by=None),
            ),
            None,
            None,
            "No longer open: closed by a later decision, nothing to acknowledge",
        ),
    ],
)
def test_what_the_updated_message_says(
    outcome: LinkRedemption, by: str | None, at: datetime | None, expected: str
) -> None:
    line = redemption_line(
        outcome, clicker="Sam", acknowledged_by=by, acknowledged_at=at, zone=BERLIN, now=NOW
    )
    assert line == expected


def test_the_time_is_utc_for_a_person_without_a_zone() -> None:
    line = redemption_line(
        redemption(),
        clicker="Al",
        acknowledged_by=None,
        acknowledged_at=None,
        zone=ZoneInfo("UTC"),
        now=NOW,
    )
    assert line == "Acknowledged by Al at Tue 10 Mar, 09:05 UTC"


def test_a_refusal_is_ephemeral_and_leaves_the_message() -> None:
    assert refusal_message("the link expired") == {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": "Not acknowledged: the link expired",
    }


def test_the_allow_list_defaults_to_slack_over_https() -> None:
    allowed = SlackSettings().response_url_hosts
    assert allowed == ["https://hooks.slack.com:443"]
    good = "https://hooks.slack.com/actions/T0/1/abc"
    assert allowed_response_url(good, allowed) == httpx.URL(good)
    assert allowed_response_url("https://HOOKS.slack.com:443/actions/x", allowed) is not None
    for bad in [
        "http://hooks.slack.com/actions/x",  # plain HTTP
        "https://hooks.slack.com:8443/actions/x",  # another port
        "https://hooks.slack.com.evil.example/actions/x",
        "https://evil.example/hooks.slack.com/",
        "https://hooks.slack.com@evil.example/",
        "https://user@hooks.slack.com/actions/x",  # user info: refused outright
        "https://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "hooks.slack.com/actions/x",
        "https://[::1",
        "",
    ]:
        assert allowed_response_url(bad, allowed) is None, bad


def test_plain_http_only_for_an_origin_named_with_its_scheme() -> None:
    settings = SlackSettings(response_url_hosts=["http://127.0.0.1:8123", "hooks.example.org"])
    allowed = settings.response_url_hosts
    assert allowed == ["http://127.0.0.1:8123", "https://hooks.example.org:443"]
    assert allowed_response_url("http://127.0.0.1:8123/respond", allowed) is not None
    assert allowed_response_url("http://127.0.0.1:8124/respond", allowed) is None
    assert allowed_response_url("https://127.0.0.1:8123/respond", allowed) is None
    assert allowed_response_url("http://hooks.example.org/x", allowed) is None
    assert allowed_response_url("anything", []) is None


@pytest.mark.parametrize(
    "entry", ["ftp://hooks.slack.com", "https://hooks.slack.com/actions", "u@hooks.slack.com", ""]
)
def test_an_allow_list_entry_is_a_host_or_an_origin(entry: str) -> None:
    with pytest.raises(ValidationError, match="response_url_hosts"):
        SlackSettings(response_url_hosts=[entry])


# -- the responder ----------------------------------------------------------------------------

URL = "https://hooks.slack.com/actions/T0/1/abc"


def responder(handler: Any, registry: CollectorRegistry, *, timeout: float = 5.0) -> SlackResponder:
    return SlackResponder(
        SlackSettings(response_timeout_s=timeout),
        registry,
        retry_delays=(0.0, 0.0),
        transport=httpx.MockTransport(handler),
    )


def count(registry: CollectorRegistry, outcome: str) -> float:
    value = registry.get_sample_value("riskrelay_slack_responses_total", {"outcome": outcome})
    return value or 0.0


async def reply_of(body: Body) -> Body:
    return body


async def test_a_reply_is_posted_in_the_background_and_retried_after_a_5xx() -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(503 if len(seen) == 1 else 200, text="ok")

    registry = CollectorRegistry()
    slack = responder(handler, registry)
    await slack.start()
    slack.respond(URL, lambda: reply_of({"text": "hi"}), risk_id="risk-42", escalation_id="e")
    assert slack.pending == 1
    await slack.stop()
    assert seen == [{"text": "hi"}, {"text": "hi"}]
    assert (count(registry, "sent"), count(registry, "failed")) == (1, 0)
    assert slack.pending == 0


async def test_failures_are_counted_never_raised() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, text="expired_url")

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async def broken() -> Body:
        raise RuntimeError("no database")

    registry = CollectorRegistry()
    slack = responder(refuse, registry)
    await slack.start()
    slack.respond(URL, lambda: reply_of({}), risk_id="risk-42", escalation_id=None)
    slack.respond(URL, broken, risk_id="risk-42", escalation_id=None)
    await slack.stop()
    other = CollectorRegistry()
    down = responder(unreachable, other)
    await down.start()
    down.respond(URL, lambda: reply_of({}), risk_id="risk-42", escalation_id=None)
    await down.stop()
    assert count(registry, "failed") == 2
    assert count(other, "failed") == 1


async def test_a_url_outside_the_allow_list_is_skipped() -> None:
    posted: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(request)
        return httpx.Response(200)

    registry = CollectorRegistry()
    slack = responder(handler, registry)
    await slack.start()
    slack.respond("http://10.0.0.1/admin", lambda: reply_of({}), risk_id="r", escalation_id=None)
    slack.respond(None, lambda: reply_of({}), risk_id="r", escalation_id=None)
    assert slack.pending == 0
    await slack.stop()
    assert posted == []
    assert count(registry, "not_allowed") == 1


async def test_shutdown_cancels_a_reply_that_outlasts_the_grace() -> None:
    release = asyncio.Event()

    async def slow() -> Body:
        await release.wait()
        return {}

    registry = CollectorRegistry()
    slack = responder(lambda request: httpx.Response(200), registry, timeout=0.05)
    await slack.start()
    slack.respond(URL, slow, risk_id="risk-42", escalation_id=None)
    await slack.stop()
    assert slack.pending == 0
    assert count(registry, "cancelled") == 1
    slack.respond(URL, slow, risk_id="risk-42", escalation_id=None)  # after shutdown: dropped
    assert slack.pending == 0
