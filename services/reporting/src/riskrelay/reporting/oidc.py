"""Console sign-in through an OpenID Connect provider (production): the authorization code flow
with PKCE (S256) and a nonce, through Authlib's client.

* ``GET /console/oidc/start?next=...`` sends the browser to the provider's authorization
  endpoint with a fresh state, nonce and code verifier, kept for ten minutes in the HttpOnly
  ``riskrelay_oidc`` cookie (SameSite=Lax: the provider's redirect back is a cross-site
  navigation, which a Strict cookie would not come back on).
* ``GET /console/oidc/callback`` checks the state, exchanges the code (client id and the secret
  from ``CONSOLE__OIDC__CLIENT_SECRET_FILE``, and the code verifier) for the provider's tokens,
  verifies the ID token the way every service does (:class:`riskrelay.shared.auth.OidcTokens`:
  the provider's JWKS, issuer, audience, times) plus its nonce and ``azp``, and maps its claims
  to the protocol's roles. The session cookie then holds that ID token, so the console's calls
  to the escalator and the register carry the provider's signature, not the console's; the
  session ends with the token's ``exp`` and the next page goes through the provider again
  (which answers at once while its own session lasts).
* Sign-out (``POST /console/logout``) of such a session goes on to the provider's
  ``end_session_endpoint`` when ``post_logout_redirect_url`` is set, ending the provider's
  session too (:func:`provider_sign_out_url`).

The console's pages check a session synchronously, with the keys already fetched, so reporting
keeps the provider's keys fresh in the background (:func:`keep_provider_keys_fresh`): fetched at
start-up, and again every few minutes, so a session signed with a rotated key is recognised on
every instance, not only the one that took the callback.

The callback answers with a page that moves on to the console by itself instead of a redirect:
a redirect would keep the provider's cross-site navigation going, and the browser would leave
the SameSite=Strict session cookie off the next request.
"""

from __future__ import annotations

import base64
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from riskrelay.reporting.console import ConsolePages, safe_next
from riskrelay.reporting.settings import ConsoleOidcSettings
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import AuthenticationError, OidcTokens, unverified_issuer
from riskrelay.shared.logging import get_logger

log = get_logger(__name__)

FLOW_COOKIE = "riskrelay_oidc"
FLOW_PATH = "/console/oidc"
FLOW_SECONDS = 600


@dataclass(frozen=True)
class PendingSignIn:
    """What the callback must find again: the state, the nonce, the PKCE verifier and where
    the person was going."""

    state: str
    nonce: str
    code_verifier: str
    next: str

    def encode(self) -> str:
        raw = json.dumps(
            {"s": self.state, "n": self.nonce, "v": self.code_verifier, "next": self.next}
        )
        return base64.urlsafe_b64encode(raw.encode()).decode()

    @classmethod
    def decode(cls, value: str | None) -> PendingSignIn | None:
        if not value:
            return None
        try:
            raw = json.loads(base64.urlsafe_b64decode(value.encode()))
            return cls(raw["s"], raw["n"], raw["v"], safe_next(raw["next"]))
        except (ValueError, KeyError, TypeError):
            return None


def new_pending(target: str) -> PendingSignIn:
    return PendingSignIn(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),
        next=safe_next(target),
    )


def check_id_token_claims(claims: dict[str, Any], client_id: str, nonce: str) -> None:
    """What an ID token must say beyond what every service checks (OIDC Core 3.1.3.7)."""
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences or []
    if client_id not in audiences:
        raise AuthenticationError("ID token is not for this console's client id")
    authorized_party = claims.get("azp")
    if authorized_party is not None and authorized_party != client_id:
        raise AuthenticationError("ID token was issued to another client")
    if not isinstance(claims.get("nonce"), str) or not hmac.compare_digest(claims["nonce"], nonce):
        raise AuthenticationError("ID token does not carry this sign-in's nonce")


def moving_on(target: str) -> HTMLResponse:
    """A page that continues to ``target`` as a same-site navigation."""
    quoted = quote(target, safe="/?=&%")
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="0;url={quoted}"><title>Signed in</title></head>'
        f'<body><p>Signed in. <a href="{quoted}">Continue</a>.</p></body></html>',
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


async def provider_sign_out_url(
    context: ServiceContext, settings: ConsoleOidcSettings, session_token: str | None
) -> str | None:
    """Where sign-out sends a person whose session is the provider's: its end-session endpoint
    (RP-initiated logout), so the provider's own session ends too and the next sign-in asks
    again. None (the console's sign-in page) for a local session, without
    ``post_logout_redirect_url``, or when the provider has no such endpoint."""
    oidc = context.tokens.oidc
    if (
        oidc is None
        or settings.post_logout_redirect_url is None
        or not session_token
        or unverified_issuer(session_token) != oidc.issuer
    ):
        return None
    try:
        endpoint = (await oidc.metadata()).get("end_session_endpoint")
    except (httpx.HTTPError, ValueError, AuthenticationError):
        return None
    if not isinstance(endpoint, str):
        return None
    query = urlencode(
        {
            "id_token_hint": session_token,
            "client_id": settings.client_id,
            "post_logout_redirect_uri": str(settings.post_logout_redirect_url),
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


KEYS_REFRESH_SECONDS = 300.0
KEYS_RETRY_SECONDS = 15.0


async def keep_provider_keys_fresh(
    oidc: OidcTokens, sleep: Callable[[float], Awaitable[None]]
) -> None:
    """Refetch the provider's JWKS every five minutes (every 15 s while it cannot be reached)."""
    while True:
        try:
            await oidc.refresh_keys()
            wait = min(KEYS_REFRESH_SECONDS, oidc.settings.jwks_max_age_seconds)
        except (httpx.HTTPError, ValueError, KeyError, AuthenticationError) as error:
            log.warning("identity provider keys not refreshed", error=type(error).__name__)
            wait = KEYS_RETRY_SECONDS
        await sleep(wait)


def build_oidc_router(
    context: ServiceContext, pages: ConsolePages, settings: ConsoleOidcSettings
) -> APIRouter:
    router = APIRouter(prefix="/oidc")
    client_secret = settings.client_secret_file.read_text().strip()
    if not client_secret:
        raise ValueError(f"{settings.client_secret_file} is empty: no OIDC client secret")
    verifier = context.tokens.oidc
    if verifier is None:
        raise ValueError(
            "console.oidc is set but auth.oidc is not: every service (reporting too) needs"
            " AUTH__OIDC__ISSUER and AUTH__OIDC__AUDIENCES to verify the provider's tokens"
        )
    if settings.client_id not in verifier.settings.audiences:
        raise ValueError(
            f"auth.oidc.audiences must include the console's client id {settings.client_id!r}"
        )
    oidc: OidcTokens = verifier

    def oauth_client() -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=settings.client_id,
            client_secret=client_secret,
            scope=settings.scopes,
            redirect_uri=str(settings.redirect_url),
            code_challenge_method="S256",
            timeout=settings.request_timeout_seconds,
        )

    def refusal(request: Request, status_code: int, message: str) -> Response:
        response = pages.page(
            request,
            "console_message.html.j2",
            status_code=status_code,
            title="Sign-in did not complete",
            message=message,
        )
        response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        return response

    @router.get("/start", response_model=None)
    async def start(request: Request, next: str | None = None) -> Response:
        try:
            metadata = await oidc.metadata()
        except (httpx.HTTPError, ValueError, AuthenticationError) as error:
            log.warning("identity provider unreachable", error=type(error).__name__)
            return refusal(
                request,
                status.HTTP_502_BAD_GATEWAY,
                "The identity provider did not answer. Try again in a minute.",
            )
        pending = new_pending(next or "/console/queue")
        async with oauth_client() as client:
            url, _ = client.create_authorization_url(
                metadata["authorization_endpoint"],
                state=pending.state,
                code_verifier=pending.code_verifier,
                nonce=pending.nonce,
            )
        response = RedirectResponse(url, status_code=status.HTTP_303_SEE_OTHER)
        response.set_cookie(
            FLOW_COOKIE,
            pending.encode(),
            max_age=FLOW_SECONDS,
            path=FLOW_PATH,
            httponly=True,
            samesite="lax",
            secure=pages.settings.secure_cookie,
        )
        return response

    @router.get("/callback", response_model=None)
    async def callback(
        request: Request,
        state: str | None = None,
        code: str | None = None,
        error: str | None = None,
        error_description: str | None = None,
    ) -> Response:
        pending = PendingSignIn.decode(request.cookies.get(FLOW_COOKIE))
        if pending is None or not state or not hmac.compare_digest(state, pending.state):
            return refusal(
                request,
                status.HTTP_400_BAD_REQUEST,
                "This sign-in was not started from this browser, or took longer than ten"
                " minutes. Start again from the sign-in page.",
            )
        if error is not None:
            log.info("identity provider refused sign-in", error=error[:100])
            return refusal(
                request,
                status.HTTP_401_UNAUTHORIZED,
                f"The identity provider refused: {(error_description or error)[:300]}",
            )
        if not code:
            return refusal(request, status.HTTP_400_BAD_REQUEST, "The provider sent no code.")
        try:
            metadata = await oidc.metadata()
            async with oauth_client() as client:
                tokens = await client.fetch_token(
                    metadata["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=pending.code_verifier,
                )
        except (OAuthError, httpx.HTTPError, ValueError, KeyError) as failure:
            log.warning("code exchange failed", error=str(failure)[:200])
            return refusal(
                request,
                status.HTTP_502_BAD_GATEWAY,
                "The identity provider did not accept this sign-in's code. Start again.",
            )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            return refusal(
                request, status.HTTP_502_BAD_GATEWAY, "The identity provider sent no ID token."
            )
        try:
            claims = await oidc.verified_claims_async(id_token)
            check_id_token_claims(claims, settings.client_id, pending.nonce)
            person = oidc.person_of(claims)
        except AuthenticationError as refused:
            log.info("OIDC sign-in refused", reason=str(refused))
            return refusal(
                request,
                status.HTTP_403_FORBIDDEN,
                f"Signed in at the identity provider, but riskrelay cannot accept it: {refused}."
                " Ask an administrator to give your account one of the protocol's roles.",
            )
        expires_at = datetime.fromtimestamp(float(claims["exp"]), tz=UTC)
        seconds = max(1, int((expires_at - pages.clock()).total_seconds()))
        response = moving_on(pending.next)
        pages.start_session(response, id_token, max_age=seconds)
        response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
        log.info("console sign-in through OIDC", subject=person.user_id)
        return response

    return router
