"""Slack's interactive buttons: ``POST /v1/slack/interactions``, verified by Slack's signature.

Slack cannot send a bearer token: it signs each request with the app's signing secret
(``X-Slack-Signature``: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``). A request whose
signature does not verify, or whose timestamp is more than five minutes from the service's
clock (a replay), gets 401 and changes nothing. The person is the roster's person with the
clicking Slack user's id; the button's value is their acknowledgement link, redeemed as for
the console (once, bound to that person, recorded with channel ``slack``).

Slack ignores the body of the answer to a button click, and wants that answer within 3 s. So
the request is answered at once (200, the outcome as JSON, a refused link too: it is recorded
like every refusal), and the message is updated afterwards through the click's
``response_url``: an acknowledged step's message loses its buttons and says who acknowledged it
and when; a refused click gets an ephemeral reply, seen only by the clicker, with the reason.
Those POSTs run as tasks of a :class:`SlackResponder`, only to the origins the settings allow
(``SLACK__RESPONSE_URL_HOSTS``): the URL comes in the request body, and posting wherever it
points would let anyone holding the signing secret aim the escalator at internal services.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
from fastapi import APIRouter, HTTPException, Request, status
from prometheus_client import CollectorRegistry, Counter
from slack_sdk.signature import Clock, SignatureVerifier

from riskrelay.escalator import store
from riskrelay.escalator.domain import StepState
from riskrelay.escalator.links import LinkRefused
from riskrelay.escalator.links_api import AckRefused, LinkDesk, LinkRedemption, LinkStep, Presenter
from riskrelay.escalator.notice import reader_time, role_name
from riskrelay.escalator.roster import Person, Roster, is_retryable_status
from riskrelay.escalator.settings import SlackSettings
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.events import ReviewDecision
from riskrelay.shared.logging import get_logger

if TYPE_CHECKING:
    from riskrelay.escalator.handlers import Escalator

log = get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024
ACK_BLOCK_ID = "riskrelay_ack"
"""The block of buttons :func:`riskrelay.escalator.person_notices.slack_buttons` adds."""
STATUS_BLOCK_ID = "riskrelay_ack_status"
"""The line an updated message gains: who acknowledged, when."""
# Slack accepts 50 blocks in a message; the status line takes one.
_MAX_BLOCKS = 50

Body = dict[str, Any]
ResponseOutcome = Literal["sent", "failed", "not_allowed", "cancelled"]


class _ServiceClock(Clock):
    """Slack's verifier reads the service's clock, not the wall clock."""

    def __init__(self, escalator: Escalator) -> None:
        self._escalator = escalator

    def now(self) -> float:
        return self._escalator.now().timestamp()


@dataclass(frozen=True)
class SlackClick:
    """What a block_actions payload says: who clicked which button, and where to answer."""

    user_id: str
    value: str
    response_url: str | None
    message: Mapping[str, Any] | None
    """The message the button was in, as Slack shows it."""


def _click(body: bytes) -> SlackClick:
    """The click, or 400."""
    try:
        form = parse_qs(body.decode(), max_num_fields=5)
        payload = json.loads(form["payload"][0])
        user_id = payload["user"]["id"]
        value = payload["actions"][0]["value"]
    except (UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as error:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "not a Slack block_actions payload with a button value"
        ) from error
    if not isinstance(user_id, str) or not isinstance(value, str):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "user id and button value must be text")
    response_url = payload.get("response_url")
    message = payload.get("message")
    return SlackClick(
        user_id=user_id,
        value=value,
        response_url=response_url if isinstance(response_url, str) else None,
        message=message if isinstance(message, dict) else None,
    )


# -- the replies (pure) ----------------------------------------------------------------------


def _escape(text: str) -> str:
    # Slack treats &, < and > as control characters in mrkdwn.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _by(who: str, at: datetime | None, zone: ZoneInfo, now: datetime) -> str:
    # The time as someone in ``zone`` reads it: ``Wed 2 Dec, 10:03 CET``.
    return f"by {who} at {reader_time(at, zone, now)}" if at is not None else f"by {who}"


def redemption_line(
    redemption: LinkRedemption,
    *,
    clicker: str,
    acknowledged_by: str | None,
    acknowledged_at: datetime | None,
    zone: ZoneInfo,
    now: datetime,
) -> str:
    """What an updated message says about its step after a click that was not refused:
    ``clicker`` acknowledged it ``now``, or someone acknowledged it earlier, or it closed."""
    if redemption.status == "accepted":
        line = f"Acknowledged {_by(clicker, now, zone, now)}"
        if redemption.decision is ReviewDecision.CONFIRMED:
            line += ": confirmed, Risk Management told"
        elif redemption.decision is ReviewDecision.NOT_CONFIRMED:
            line += ": not confirmed, to the Weekly Risk Review"
        return line + (" (late)" if redemption.late else "")
    if acknowledged_by is not None:
        return f"Already acknowledged {_by(acknowledged_by, acknowledged_at, zone, now)}"
    if redemption.step.state is StepState.CANCELLED:
        return "No longer open: closed by a later decision, nothing to acknowledge"
    return "No longer open: nothing to acknowledge"


def _step_blocks(step: LinkStep) -> list[Body]:
    """The step's gist, for a click whose payload carries no copy of its message."""
    text = f"*{_escape(step.title)}*\n`{_escape(step.risk_id)}` · {role_name(step.role)}"
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def replacement_message(
    original: Mapping[str, Any] | None, line: str, step: LinkStep | None = None
) -> Body:
    """The clicked message again, without its buttons, with ``line`` at the end: replaces the
    original in the channel. ``original`` is the message from the click's payload (the blocks
    the escalator sent, as Slack shows them); without one, the step's gist stands in."""
    blocks: list[Body] = []
    if original is not None and isinstance(original.get("blocks"), list):
        blocks = [
            block
            for block in original["blocks"]
            if isinstance(block, dict)
            and block.get("block_id") not in (ACK_BLOCK_ID, STATUS_BLOCK_ID)
        ]
    if not blocks and step is not None:
        blocks = _step_blocks(step)
    status_block: Body = {
        "type": "context",
        "block_id": STATUS_BLOCK_ID,
        "elements": [{"type": "mrkdwn", "text": f":white_check_mark: *{_escape(line)}*"}],
    }
    text = original.get("text") if original is not None else None
    return {
        "replace_original": True,
        "text": f"{line}: {text}" if isinstance(text, str) and text else line,
        "blocks": [*blocks[: _MAX_BLOCKS - 1], status_block],
    }


def refusal_message(detail: str) -> Body:
    """A refused click's reply: only the clicker sees it, the message stays as it was."""
    return {
        "response_type": "ephemeral",
        "replace_original": False,
        "text": f"Not acknowledged: {detail}",
    }


def allowed_response_url(url: str, allowed: Collection[str]) -> httpx.URL | None:
    """The URL to POST to, when its origin is one of ``allowed`` (the settings' normalised
    ``scheme://host:port`` entries); None for any other URL or one that does not parse."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return None
    origin = SlackSettings.origin(parsed)
    return parsed if origin is not None and origin in allowed else None


def person_named(roster: Roster, actor: str) -> Person | None:
    """The roster's person an acknowledgement's ``acknowledged_by`` (an e-mail) names."""
    people = [*roster.people.values()] + [
        person for role in roster.roles for person in roster.people_of(role)
    ]
    wanted = actor.strip().lower()
    return next((p for p in people if p.email and p.email.strip().lower() == wanted), None)


# -- posting the replies ---------------------------------------------------------------------


class SlackResponder:
    """POSTs replies to clicks' ``response_url`` in tasks it keeps until they end; on shutdown
    it waits a moment for them, then cancels the rest. A failure is logged with the risk and
    counted in ``riskrelay_slack_responses_total{outcome}``, never raised."""

    def __init__(
        self,
        settings: SlackSettings,
        registry: CollectorRegistry,
        *,
        retry_delays: Sequence[float] = (0.5, 2.0),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._allowed = frozenset(settings.response_url_hosts)
        self._timeout = settings.response_timeout_s
        # Each response_url takes 5 POSTs; a click makes one, so a few retries stay within.
        self._retry_delays = tuple(retry_delays)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.responses = Counter(
            "riskrelay_slack_responses_total",
            "Replies to Slack clicks through their response_url, by outcome (sent, failed,"
            " not_allowed: the URL is outside SLACK__RESPONSE_URL_HOSTS, cancelled at shutdown).",
            ["outcome"],
            registry=registry,
        )
        for outcome in ("sent", "failed", "not_allowed", "cancelled"):
            self.responses.labels(outcome)

    @property
    def pending(self) -> int:
        return len(self._tasks)

    async def start(self, context: ServiceContext | None = None) -> None:
        # No redirects: a redirect could lead the POST outside the allowed origins.
        self._client = httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, transport=self._transport
        )

    async def stop(self, context: ServiceContext | None = None) -> None:
        tasks = set(self._tasks)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=self._timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def respond(
        self,
        response_url: str | None,
        reply: Callable[[], Awaitable[Body]],
        *,
        risk_id: str | None,
        escalation_id: str | None,
    ) -> None:
        """Build ``reply`` and POST it to ``response_url`` in the background."""
        if response_url is None:
            return
        where = {"risk_id": risk_id, "escalation_id": escalation_id}
        url = allowed_response_url(response_url, self._allowed)
        if url is None:
            self.responses.labels("not_allowed").inc()
            log.warning(
                "Slack response_url outside SLACK__RESPONSE_URL_HOSTS; message not updated",
                response_url=response_url[:200],
                **where,
            )
            return
        if self._client is None:
            self.responses.labels("cancelled").inc()
            log.warning("Slack reply dropped: the escalator is not running", **where)
            return
        task = asyncio.create_task(self._post(self._client, url, reply, where))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(
        self,
        client: httpx.AsyncClient,
        url: httpx.URL,
        reply: Callable[[], Awaitable[Body]],
        where: dict[str, str | None],
    ) -> None:
        error = "not attempted"
        try:
            body = await reply()
            for attempt, delay in enumerate((*self._retry_delays, None), start=1):
                try:
                    response = await client.post(url, json=body)
                except httpx.HTTPError as failure:
                    error = f"{type(failure).__name__}: {failure}"[:300]
                else:
                    if response.is_success:
                        self.responses.labels("sent").inc()
                        return
                    error = f"HTTP {response.status_code}: {response.text[:200]}"
                    if not is_retryable_status(response.status_code):
                        break
                if delay is None:
                    break
                log.info("Slack reply failed; retrying", attempt=attempt, error=error, **where)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self.responses.labels("cancelled").inc()
            log.warning("Slack reply cancelled at shutdown; message not updated", **where)
            raise
        except Exception as failure:  # a reply that cannot be built must not go unnoticed
            error = f"{type(failure).__name__}: {failure}"[:300]
        self.responses.labels("failed").inc()
        log.error("Slack reply failed; message not updated", error=error, **where)


# -- the route -------------------------------------------------------------------------------


def build_slack_router(escalator: Escalator) -> APIRouter:
    router = APIRouter(prefix="/v1/slack", tags=["slack"])
    desk = LinkDesk(escalator)
    settings: SlackSettings = getattr(escalator.context.settings, "slack", None) or SlackSettings()
    secret = settings.signing_secret
    verifier = (
        SignatureVerifier(secret.get_secret_value(), clock=_ServiceClock(escalator))
        if secret is not None
        else None
    )
    responder = SlackResponder(settings, escalator.context.registry)
    if verifier is not None:
        escalator.context.on_startup.append(responder.start)
        escalator.context.on_shutdown.append(responder.stop)
    escalator.context.state["slack_responder"] = responder

    def refused(click: SlackClick, detail: str, escalation_id: str | None) -> None:
        async def reply() -> Body:
            return refusal_message(detail)

        responder.respond(click.response_url, reply, risk_id=None, escalation_id=escalation_id)

    def redeemed(
        click: SlackClick, redemption: LinkRedemption, clicker: str, zone: ZoneInfo, now: datetime
    ) -> None:
        step = redemption.step

        async def reply() -> Body:
            by, at = step.acknowledged_by, None
            if redemption.status != "accepted" and by is not None:
                async with escalator.context.db.acquire() as connection:
                    rows = await store.step_acknowledgements(connection, step.escalation_id)
                first = next((r for r in rows if r["outcome"] == "accepted"), None)
                at = first["acknowledged_at"] if first is not None else None
                person = person_named(escalator.roster, by)
                by = person.name if person is not None else by
            line = redemption_line(
                redemption,
                clicker=clicker,
                acknowledged_by=by,
                acknowledged_at=at,
                zone=zone,
                now=now,
            )
            return replacement_message(click.message, line, step)

        responder.respond(
            click.response_url, reply, risk_id=step.risk_id, escalation_id=step.escalation_id
        )

    @router.post(
        "/interactions",
        summary="Slack's button clicks (Slack's request signature, no bearer token).",
        description="Answered at once; the clicked message is then updated through the"
        " payload's `response_url` (an allowed origin only): without its buttons and with who"
        " acknowledged when, or, for a refused link, an ephemeral reply with the reason.",
        responses={
            400: {"description": "not a block_actions payload"},
            401: {"description": "bad or missing signature, or a timestamp over 5 minutes off"},
            413: {"description": "body too large"},
            404: {"description": "no Slack signing secret configured: interactivity is off"},
        },
    )
    async def interactions(request: Request) -> dict[str, Any]:
        if verifier is None:
            # Switched off by configuration, not failing: a client error, never a 5xx.
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                "Slack interactivity is not set up: set RISKRELAY_ESCALATOR_SLACK__SIGNING_SECRET",
            )
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "body too large")
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        if (
            timestamp is None
            or not timestamp.isdigit()
            or not verifier.is_valid(body, timestamp, signature)
        ):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "Slack request signature or timestamp is not valid"
            )
        click = _click(body)
        person = escalator.roster.person_with_slack_id(click.user_id)
        presenter = Presenter(
            email=person.email if person else None,
            actor=(person.email or person.name) if person else f"slack:{click.user_id}",
            roles=escalator.roster.roles_of(person) if person else [],
        )
        now = escalator.now()
        if not presenter.roles:
            refusal = LinkRefused(
                "wrong_person", f"Slack user {click.user_id} is nobody in the roster with a role"
            )
            await desk.record_refusal(refusal, presenter, now)
            refused(click, refusal.detail, None)
            return {"ok": False, "reason": refusal.reason, "text": refusal.detail}
        assert person is not None  # a presenter with roles is a roster person
        try:
            result = await desk.redeem(click.value, presenter, now)
        except LinkRefused as refusal:
            refused(click, refusal.detail, refusal.claims.escalation_id if refusal.claims else None)
            return {"ok": False, "reason": refusal.reason, "text": refusal.detail}
        except AckRefused as refusal:
            refused(click, refusal.detail, None)
            return {"ok": False, "reason": "refused", "text": refusal.detail}
        redeemed(click, result, person.name, escalator.roster.person_zone(person), now)
        text = (
            f"Acknowledged by {presenter.actor}."
            if result.status == "accepted"
            else f"Already acknowledged by {result.step.acknowledged_by}."
        )
        return {"ok": True, "status": result.status, "text": text}

    return router
