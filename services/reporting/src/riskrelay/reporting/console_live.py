"""Live lists for the console pages, without reloading them.

Each live page wraps its list in an element carrying ``data-live-url``: a fragment endpoint
that renders just that list (the same partial template the page includes). The console's
script (``/console/static/console-live.js``, served from this package, no framework) polls it
every ``console.live_refresh_seconds``; the endpoint answers with the fragment and a strong
ETag of its bytes, or 304 while nothing changed, so an idle page costs one small request per
period. Polling over server-sent events: the service runs behind plain HTTP proxies and on two
cores, and a few requests a minute per open page are cheaper than a held connection each.

* ``/console/queue/live``: My queue's rows.
* ``/console/risks/{risk_id}/live``: the risk page's escalation timeline.
* ``/console/review/live``: the weekly review's agenda and decisions
  (:mod:`riskrelay.reporting.console_review`).

A fragment asked for without a session gets 401 (the script says so), not the sign-in
redirect meant for a person's browser.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, Response

from riskrelay.reporting import console_store, store
from riskrelay.reporting.console import (
    CSRF_FIELD,
    REVIEW_KIND,
    SESSION_COOKIE,
    ConsolePages,
    queue_items,
    queue_roles,
    step_kinds,
    without_just_acknowledged,
)
from riskrelay.reporting.console_risk import TIMELINE_LABELS
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import Principal

SCRIPT = "console-live.js"
SCRIPT_PATH = f"/console/static/{SCRIPT}"


def fragment_etag(body: str) -> str:
    return '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match (weak comparison, RFC 9110): ``*`` or any listed tag."""
    if not header:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag in tags


def fragment(pages: ConsolePages, request: Request, template: str, **values: Any) -> Response:
    """The partial ``template`` rendered for the signed-in person, or 304 if unchanged."""
    body = pages.templates.get_template(template).render(
        csrf_field=CSRF_FIELD, csrf_token=pages.csrf_of(request), **values
    )
    etag = fragment_etag(body)
    headers = {
        "ETag": etag,
        "Cache-Control": "no-cache, private",
        "X-Content-Type-Options": "nosniff",
        "Vary": "Cookie",
    }
    if etag_matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return HTMLResponse(body, headers=headers)


def signed_out() -> Response:
    return Response(
        "Your console session has ended: reload the page to sign in again.",
        status_code=status.HTTP_401_UNAUTHORIZED,
        media_type="text/plain",
    )


def forbidden(message: str) -> Response:
    return Response(message, status_code=status.HTTP_403_FORBIDDEN, media_type="text/plain")


async def queue_values(
    context: ServiceContext, pages: ConsolePages, request: Request, principal: Principal
) -> dict[str, Any]:
    """My queue's rows, as the queue page shows them."""
    now = pages.clock()
    async with context.db.acquire() as connection:
        steps = await store.open_steps(connection, queue_roles(principal), now)
    steps = without_just_acknowledged(context, steps, now)
    kinds = await step_kinds(
        context, request.cookies[SESSION_COOKIE], [step.escalation_id for step in steps]
    )
    return {"items": queue_items(steps, now), "kinds": kinds, "review_kind": REVIEW_KIND}


def build_live_router(context: ServiceContext, pages: ConsolePages) -> APIRouter:
    router = APIRouter()
    pages.templates.globals["console_live_seconds"] = pages.settings.live_refresh_seconds
    script = resources.files("riskrelay.reporting").joinpath("static", SCRIPT).read_bytes()
    script_etag = fragment_etag(script.decode())

    @router.get(f"/static/{SCRIPT}", response_model=None)
    async def live_script(request: Request) -> Response:
        headers = {
            "ETag": script_etag,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
        }
        if etag_matches(request.headers.get("if-none-match"), script_etag):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        return Response(script, media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get("/queue/live", response_model=None)
    async def queue_live(request: Request) -> Response:
        principal = pages.session(request)
        if principal is None:
            return signed_out()
        values = await queue_values(context, pages, request, principal)
        return fragment(pages, request, "_queue_items.html.j2", **values)

    @router.get("/risks/{risk_id}/live", response_model=None)
    async def risk_live(risk_id: str, request: Request) -> Response:
        principal = pages.session(request)
        if principal is None:
            return signed_out()
        async with context.db.acquire() as connection:
            page = await console_store.risk_page(connection, risk_id)
        if page is None:
            return Response(
                f"No risk {risk_id} is known.",
                status_code=status.HTTP_404_NOT_FOUND,
                media_type="text/plain",
            )
        return fragment(
            pages, request, "_risk_timeline.html.j2", page=page, timeline_labels=TIMELINE_LABELS
        )

    return router
