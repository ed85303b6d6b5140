"""Slack's interactive buttons: ``POST /v1/slack/interactions``, verified by Slack's signature.

Slack cannot send a bearer token: it signs each request with the app's signing secret
(``X-Slack-Signature``: ``v0=`` HMAC-SHA256 of ``v0:{timestamp}:{body}``). A request whose
signature does not verify, or whose timestamp is more than five minutes from the service's
clock (a replay), gets 401 and changes nothing. The person is the roster's person with the
clicking Slack user's id; the button's value is their acknowledgement link, redeemed as for
the console (once, bound to that person, recorded with channel ``slack``).

Slack shows nothing of a non-200 answer to a button, so a refused link is answered 200 with
the reason as the message text (and recorded like every refusal).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, status
from slack_sdk.signature import Clock, SignatureVerifier

from riskrelay.escalator.links import LinkRefused
from riskrelay.escalator.links_api import AckRefused, LinkDesk, Presenter

if TYPE_CHECKING:
    from riskrelay.escalator.handlers import Escalator

MAX_BODY_BYTES = 64 * 1024


class _ServiceClock(Clock):
    """Slack's verifier reads the service's clock, not the wall clock."""

    def __init__(self, escalator: Escalator) -> None:
        self._escalator = escalator

    def now(self) -> float:
        return self._escalator.now().timestamp()


def _action(body: bytes) -> tuple[str, str]:
    """The clicking Slack user's id and the button's value, or 400."""
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
    return user_id, value


def build_slack_router(escalator: Escalator) -> APIRouter:
    router = APIRouter(prefix="/v1/slack", tags=["slack"])
    desk = LinkDesk(escalator)
    settings = getattr(escalator.context.settings, "slack", None)
    secret = settings.signing_secret if settings is not None else None
    verifier = (
        SignatureVerifier(secret.get_secret_value(), clock=_ServiceClock(escalator))
        if secret is not None
        else None
    )

    @router.post(
        "/interactions",
        summary="Slack's button clicks (Slack's request signature, no bearer token).",
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
        user_id, token = _action(body)
        person = escalator.roster.person_with_slack_id(user_id)
        presenter = Presenter(
            email=person.email if person else None,
            actor=(person.email or person.name) if person else f"slack:{user_id}",
            roles=escalator.roster.roles_of(person) if person else [],
        )
        now = escalator.now()
        if not presenter.roles:
            refusal = LinkRefused(
                "wrong_person", f"Slack user {user_id} is nobody in the roster with a role"
            )
            await desk.record_refusal(refusal, presenter, now)
            return {"ok": False, "reason": refusal.reason, "text": refusal.detail}
        try:
            result = await desk.redeem(token, presenter, now)
        except LinkRefused as refusal:
            return {"ok": False, "reason": refusal.reason, "text": refusal.detail}
        except AckRefused as refused:
            return {"ok": False, "reason": "refused", "text": refused.detail}
        text = (
            f"Acknowledged by {presenter.actor}."
            if result.status == "accepted"
            else f"Already acknowledged by {result.step.acknowledged_by}."
        )
        return {"ok": True, "status": result.status, "text": text}

    return router
