"""The console's Risk Register pages, all through the register service's API as the person.

* ``/console/register``: the entries, filtered by level, category, status and text (the API's
  own filters), a page at a time; ``/console/register/export.csv`` is the API's CSV export with
  the same filters.
* ``/console/register/{risk_id}``: one entry, a form for its assessment fields and one for its
  lifecycle moves (the transitions the register allows from its status), and its history as a
  diff (each version's fields before and after).

Edits and moves carry the ETag of the version the person saw; the register checks it
(``If-Match``) and refuses a stale one with 412, which the page explains: someone changed the
entry since it was opened, nothing was saved, and the current version is shown. Only the fields
the person changed are sent (each field's value as shown travels beside it), so an unchanged
residual score is never resent as an analyst's own figure. A field the person emptied is sent
as ``null``, which the register takes as "clear it" (a field left out is unchanged); the
register itself refuses to clear what the entry's status depends on, and the page shows why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from fastapi import APIRouter, Request, status
from fastapi.responses import RedirectResponse, Response

from riskrelay.reporting import people
from riskrelay.reporting.console import (
    REGISTER_CLIENT,
    SESSION_COOKIE,
    ConsolePages,
    Submission,
    login_redirect,
)
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.events import RiskCategory, RiskLevel, RiskStatus, Treatment
from riskrelay.shared.logging import get_logger

log = get_logger(__name__)

PAGE_SIZE = 50
FORM_FIELDS = 64
TEXT_FIELDS = (
    "owner",
    "assessment",
    "communication_template",
    "resolution_verification",
    "prevention_measures",
)
NUMBER_FIELDS = ("likelihood", "impact", "residual_score")
MITIGATION_FIELDS = ("mitigation_strategy", "mitigation_owner", "mitigation_target_date")
EDITABLE = (*TEXT_FIELDS, *NUMBER_FIELDS, "treatment", *MITIGATION_FIELDS)
REMOVE_MITIGATION = "remove_mitigation"
FILTERS = ("level", "category", "status", "q")
WAS = "was_"
ENTITY_TAG = re.compile(r'(W/)?"[\x21\x23-\x7e]{0,200}"')


# ---------------------------------------------------------------------------------------------
# Forms (pure)
# ---------------------------------------------------------------------------------------------


def shown_values(entry: Mapping[str, Any]) -> dict[str, str]:
    """Each editable field of an entry (the API's JSON) as the form shows it."""
    plan = entry.get("mitigation") or {}
    values = {
        **{name: entry.get(name) for name in (*TEXT_FIELDS, *NUMBER_FIELDS, "treatment")},
        "mitigation_strategy": plan.get("strategy"),
        "mitigation_owner": plan.get("owner"),
        "mitigation_target_date": (plan.get("target_date") or "")[:10] or None,
    }
    return {name: "" if value is None else str(value) for name, value in values.items()}


def assessment_changes(form: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The PATCH body of the fields the person changed (against the ``was_`` values the form
    was shown with), and what is wrong with the form. An emptied field is sent as ``None``:
    the register clears it (or refuses, when the entry's status needs it)."""
    changed = {
        name: form.get(name, "").strip()
        for name in EDITABLE
        if form.get(name, "").strip() != form.get(WAS + name, "").strip()
    }
    body: dict[str, Any] = {}
    errors: list[str] = []
    for name, value in changed.items():
        if name in MITIGATION_FIELDS:
            continue  # the plan is sent whole, below
        if not value:
            body[name] = None
        elif name in NUMBER_FIELDS:
            try:
                body[name] = int(value)
            except ValueError:
                errors.append(f"{label(name)} must be a whole number.")
        else:
            body[name] = value
    had_plan = bool(form.get(WAS + "mitigation_strategy", "").strip())
    plan_emptied = not any(form.get(name, "").strip() for name in MITIGATION_FIELDS)
    edits_plan = bool(changed.keys() & set(MITIGATION_FIELDS))
    if form.get(REMOVE_MITIGATION) == "on" and had_plan:
        if edits_plan and not plan_emptied:
            errors.append("Either remove the mitigation plan or change it, not both.")
        else:
            body["mitigation"] = None
    elif edits_plan and had_plan and plan_emptied:
        body["mitigation"] = None
    elif edits_plan:
        strategy = form.get("mitigation_strategy", "").strip()
        target = form.get("mitigation_target_date", "").strip()
        plan: dict[str, Any] = {"strategy": strategy}
        if not strategy:
            errors.append(
                "A mitigation plan needs its strategy"
                + (" (or tick Remove the mitigation plan)." if had_plan else ".")
            )
        if owner := form.get("mitigation_owner", "").strip():
            plan["owner"] = owner
        if target:
            try:
                day = datetime.strptime(target, "%Y-%m-%d")
            except ValueError:
                errors.append("Mitigation target date must be a date (YYYY-MM-DD).")
            else:
                plan["target_date"] = day.replace(tzinfo=UTC).isoformat()
        body["mitigation"] = plan
    if form.get("reviewed") == "on":
        body["reviewed"] = True
    if body and (reason := form.get("reason", "").strip()):
        body["reason"] = reason[:4_000]
    return body, errors


def is_entity_tag(value: str) -> bool:
    """An ETag as HTTP has it (RFC 9110 entity-tag): what the register sends, and nothing a
    header cannot carry."""
    return ENTITY_TAG.fullmatch(value) is not None


def label(name: str) -> str:
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class HistoryRow:
    version: int
    at: str
    kind: str
    who: str
    reason: str | None
    field: str
    before: str
    after: str


def _shown(value: Any) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_shown(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value) or "–"
    return str(value)


def history_rows(history: list[dict[str, Any]], names: Mapping[str, str]) -> list[HistoryRow]:
    """The register's history as a diff, newest version first, one row per changed field;
    the actor shown by the person's name where the console knows the id."""
    rows = []
    for item in sorted(history, key=lambda h: -int(h["version"])):
        actor = item.get("actor")
        who = names.get(actor, actor) if actor else "the service"
        if item.get("role"):
            who = f"{who} ({item['role']})"
        changes = item.get("changes") or {"": {"before": None, "after": None}}
        for field, change in sorted(changes.items()):
            rows.append(
                HistoryRow(
                    version=int(item["version"]),
                    at=str(item["at"])[:16].replace("T", " "),
                    kind=str(item["kind"]),
                    who=who,
                    reason=item.get("reason"),
                    field=field,
                    before=_shown(change.get("before")),
                    after=_shown(change.get("after")),
                )
            )
    return rows


def filter_query(query: Mapping[str, str]) -> dict[str, str]:
    """The list's filters as the register's API takes them (blank ones dropped)."""
    return {name: query[name].strip() for name in FILTERS if query.get(name, "").strip()}


def refusal_text(response: httpx.Response) -> str:
    """What the register said, readably: its message, or each invalid field and why."""
    try:
        answer = response.json()
    except ValueError:
        return response.text[:300]
    detail = answer.get("detail") if isinstance(answer, dict) else answer
    if isinstance(answer, dict) and isinstance(answer.get("errors"), list):
        # The services' validation errors: each field (after body./query.) and its message.
        return "; ".join(
            f"{str(item.get('field', '')).split('.', 1)[-1]}: {item.get('message')}"
            for item in answer["errors"]
        )
    if isinstance(detail, dict):
        return str(detail.get("message", detail))
    return str(detail)


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


def build_register_router(context: ServiceContext, pages: ConsolePages) -> APIRouter:
    router = APIRouter(prefix="/register")

    def client() -> httpx.AsyncClient:
        client: httpx.AsyncClient = context.state[REGISTER_CLIENT]
        return client

    async def call(method: str, path: str, token: str, **kwargs: Any) -> httpx.Response | None:
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        try:
            return await client().request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as error:
            log.warning("register unreachable", error=type(error).__name__)
            return None

    def unreachable(request: Request, principal: Any) -> Response:
        return pages.page(
            request,
            "console_message.html.j2",
            status_code=status.HTTP_502_BAD_GATEWAY,
            principal=principal,
            title="The register did not answer",
            message="The register service did not answer; nothing was changed. Try again.",
        )

    def refused(request: Request, principal: Any, response: httpx.Response) -> Response:
        code = response.status_code
        title = {403: "Not allowed", 404: "Unknown risk"}.get(code, "The register refused")
        return pages.page(
            request,
            "console_message.html.j2",
            status_code=code if 400 <= code < 500 else status.HTTP_502_BAD_GATEWAY,
            principal=principal,
            title=title,
            message=f"The register answered {code}: {refusal_text(response)}",
        )

    @router.get("", response_model=None)
    async def register_list(request: Request) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        filters = filter_query(request.query_params)
        params = {**filters, "limit": str(PAGE_SIZE)}
        if cursor := request.query_params.get("cursor"):
            params["cursor"] = cursor
        response = await call("GET", "/v1/risks", request.cookies[SESSION_COOKIE], params=params)
        if response is None:
            return unreachable(request, principal)
        if response.status_code != 200:
            return refused(request, principal, response)
        page = response.json()
        return pages.page(
            request,
            "console_register.html.j2",
            principal=principal,
            entries=page["items"],
            next_query=urlencode({**filters, "cursor": page["next_cursor"]})
            if page.get("next_cursor")
            else None,
            filters=filters,
            export_query=urlencode(filters),
            levels=list(RiskLevel),
            categories=list(RiskCategory),
            statuses=list(RiskStatus),
        )

    @router.get("/export.csv", response_model=None)
    async def register_export(request: Request) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        response = await call(
            "GET",
            "/v1/risks/export.csv",
            request.cookies[SESSION_COOKIE],
            params=filter_query(request.query_params),
        )
        if response is None:
            return unreachable(request, principal)
        if response.status_code != 200:
            return refused(request, principal, response)
        return Response(
            response.content,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": 'attachment; filename="risk-register.csv"',
                "Cache-Control": "no-store",
            },
        )

    async def entry_page(
        request: Request,
        principal: Any,
        risk_id: str,
        *,
        done: str | None = None,
        failed: str | None = None,
        status_code: int = 200,
        unsaved: Mapping[str, Any] | None = None,
    ) -> Response:
        response = await call(
            "GET",
            f"/v1/risks/{quote(risk_id, safe='')}",
            request.cookies[SESSION_COOKIE],
        )
        if response is None:
            return unreachable(request, principal)
        if response.status_code != 200:
            return refused(request, principal, response)
        detail = response.json()
        async with context.db.acquire() as connection:
            names = {
                user.user_id: f"{user.name} <{user.email}>"
                for user in await people.list_users(connection)
            }
        return pages.page(
            request,
            "console_register_entry.html.j2",
            status_code=status_code,
            principal=principal,
            detail=detail,
            entry=detail["entry"],
            etag=response.headers.get("etag", ""),
            shown=shown_values(detail["entry"]),
            history=history_rows(detail["history"], names),
            treatments=list(Treatment),
            was=WAS,
            done=done,
            failed=failed,
            unsaved=unsaved or {},
        )

    @router.get("/{risk_id}", response_model=None)
    async def register_entry(
        risk_id: str, request: Request, done: str | None = None, failed: str | None = None
    ) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        return await entry_page(request, principal, risk_id, done=done, failed=failed)

    async def write(
        submitted: Submission, request: Request, risk_id: str, path: str, body: dict[str, Any]
    ) -> Response:
        etag = submitted.form.get("etag", "").strip()
        if etag and not is_entity_tag(etag):
            return await entry_page(
                request,
                submitted.principal,
                risk_id,
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                failed="The form's version of the entry is damaged; nothing was saved.",
            )
        response = await call(
            "PATCH" if path == "" else "POST",
            f"/v1/risks/{quote(risk_id, safe='')}{path}",
            submitted.token,
            json=body,
            headers={"If-Match": etag} if etag else {},
        )
        if response is None:
            return unreachable(request, submitted.principal)
        if response.status_code == status.HTTP_403_FORBIDDEN:
            # Not the person's to change: said as such, whether or not the entry exists.
            return refused(request, submitted.principal, response)
        if response.status_code == 412:
            return await entry_page(
                request,
                submitted.principal,
                risk_id,
                status_code=status.HTTP_412_PRECONDITION_FAILED,
                failed=(
                    "Someone else changed this entry after you opened it, so nothing was saved."
                    " The current version is shown below; your edit is listed so you can"
                    " apply it again."
                ),
                unsaved={k: v for k, v in body.items() if k != "reason"},
            )
        if response.status_code != 200:
            return await entry_page(
                request,
                submitted.principal,
                risk_id,
                status_code=response.status_code if response.status_code < 500 else 502,
                failed=f"The register refused ({response.status_code}): {refusal_text(response)}",
                unsaved={k: v for k, v in body.items() if k != "reason"},
            )
        version = response.json().get("version")
        return RedirectResponse(
            f"/console/register/{quote(risk_id, safe='')}?done="
            + quote(f"Saved: the entry is now version {version}.", safe=""),
            status_code=status.HTTP_303_SEE_OTHER,
        )

    @router.post("/{risk_id}/edit", response_model=None)
    async def register_edit(risk_id: str, request: Request) -> Response:
        submitted = await pages.submission(request, max_fields=FORM_FIELDS)
        if isinstance(submitted, Response):
            return submitted
        body, errors = assessment_changes(submitted.form)
        if not errors and not body:
            errors = ["Nothing was changed."]
        if errors:
            return await entry_page(
                request,
                submitted.principal,
                risk_id,
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                failed=" ".join(errors),
            )
        return await write(submitted, request, risk_id, "", body)

    @router.post("/{risk_id}/transition", response_model=None)
    async def register_transition(risk_id: str, request: Request) -> Response:
        submitted = await pages.submission(request, max_fields=FORM_FIELDS)
        if isinstance(submitted, Response):
            return submitted
        form = submitted.form
        target = form.get("target", "")
        if target not in {s.value for s in RiskStatus}:
            return await entry_page(
                request,
                submitted.principal,
                risk_id,
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                failed="Choose the status to move the risk to.",
            )
        body: dict[str, Any] = {"target": target}
        for name in ("resolution_verification", "reason"):
            if value := form.get(name, "").strip():
                body[name] = value
        return await write(submitted, request, risk_id, "/transitions", body)

    return router
