"""The register's HTTP API: read the register, record assessments, move risks through their
lifecycle, export, and list overdue reviews.

Access (bearer tokens, deny by default; admin may do everything):

- read (lists, one risk, export, overdue reviews): analyst, risk_management,
  support_manager, support_director;
- write (assessment fields, transitions): risk_management, support_manager; each transition
  further checks the roles of its edge in :data:`riskrelay.register.domain.TRANSITIONS`.

Writes need ``If-Match`` with the entry's ``ETag`` (428 without it, 412 when stale), so two
analysts editing the same risk cannot overwrite each other.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from riskrelay.register import store
from riskrelay.register.domain import (
    ALLOWED_TARGETS,
    Assessment,
    ChangeKind,
    ClearRefused,
    FieldChange,
    IllegalTransition,
    InvalidScore,
    ResolutionVerificationRequired,
    SupportBrief,
    TransitionNotPermitted,
    apply_assessment,
    apply_transition,
    support_brief,
)
from riskrelay.register.handlers import Change, Register
from riskrelay.shared.auth import Principal, require_roles
from riskrelay.shared.events import (
    MitigationPlan,
    RiskCategory,
    RiskLevel,
    RiskRegisterEntry,
    RiskStatus,
    Role,
    Treatment,
)

READ_ROLES = (Role.ANALYST, Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER, Role.SUPPORT_DIRECTOR)
WRITE_ROLES = (Role.RISK_MANAGEMENT, Role.SUPPORT_MANAGER)

Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]
Writer = Annotated[Principal, Depends(require_roles(*WRITE_ROLES))]
RiskId = Annotated[str, Path(min_length=1, max_length=256, description="Risk id.")]
IfMatch = Annotated[
    str | None,
    Header(description="The ETag of the version the change was based on (required)."),
]


# ---------------------------------------------------------------------------------------------
# ETags
# ---------------------------------------------------------------------------------------------


def etag(entry: RiskRegisterEntry) -> str:
    return f'"v{entry.version}"'


def if_match_satisfied(header: str, entry: RiskRegisterEntry) -> bool:
    """RFC 9110 If-Match: ``*`` or a list of strong entity tags (weak ones never match)."""
    tags = [tag.strip() for tag in header.split(",")]
    return "*" in tags or etag(entry) in tags


def if_none_match_satisfied(header: str, entry: RiskRegisterEntry) -> bool:
    """Whether If-None-Match asks for nothing new (weak comparison, as RFC 9110 says)."""
    tags = [tag.strip().removeprefix("W/") for tag in header.split(",")]
    return "*" in tags or etag(entry) in tags


def _require_current(if_match: str | None, entry: RiskRegisterEntry) -> None:
    if if_match is None:
        raise HTTPException(
            status.HTTP_428_PRECONDITION_REQUIRED,
            "If-Match is required: send the ETag of the version you edited (GET the risk first)",
        )
    if not if_match_satisfied(if_match, entry):
        raise HTTPException(
            status.HTTP_412_PRECONDITION_FAILED,
            f"risk {entry.risk_id} changed since you read it; it is now at {etag(entry)}",
            headers={"ETag": etag(entry)},
        )


def _invalid(location: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 in the same shape as FastAPI's own validation errors (field named)."""
    return RequestValidationError([{"loc": location, "msg": message, "type": "value_error"}])


# ---------------------------------------------------------------------------------------------
# Request and response bodies
# ---------------------------------------------------------------------------------------------


class MitigationInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(min_length=1, max_length=8_000, description="Mitigation strategy.")
    owner: str | None = Field(default=None, max_length=256, description="Who owns the plan.")
    target_date: AwareDatetime | None = Field(
        default=None, description="Target completion (with a UTC offset)."
    )


class AssessmentUpdate(BaseModel):
    """What Risk Management sends back (protocol, "From Risk Management to Customer Support").

    A field left out is unchanged; a field sent as `null` is cleared (an empty or blank text
    clears a text too), recorded in the history and published like any change. Scores are
    recomputed from likelihood, impact and treatment: clearing likelihood or impact clears the
    inherent score and the residual; clearing the treatment clears its residual unless one is
    sent with it; clearing `residual_score` drops the analyst's figure, so the residual follows
    the treatment again (none without one). A field the status depends on cannot be cleared
    in it (422 naming the field and why): `owner` under joint assessment, response planned,
    mitigating and monitoring; `likelihood`, `impact` and `treatment` once a response is
    planned (response planned, mitigating, monitoring); `mitigation` while mitigating;
    `resolution_verification` once closed."""

    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(default=None, max_length=256)
    likelihood: int | None = Field(default=None, ge=1, le=5)
    impact: int | None = Field(default=None, ge=1, le=5)
    treatment: Treatment | None = None
    residual_score: int | None = Field(
        default=None, ge=1, le=25, description="Analyst's residual; at most the inherent score."
    )
    assessment: str | None = Field(default=None, max_length=20_000)
    mitigation: MitigationInput | None = Field(
        default=None, description="The whole plan (replaces the one recorded); null removes it."
    )
    communication_template: str | None = Field(default=None, max_length=20_000)
    resolution_verification: str | None = Field(default=None, max_length=8_000)
    prevention_measures: str | None = Field(default=None, max_length=8_000)
    reviewed: bool = Field(default=False, description="This update is a review: reschedule.")
    reason: str | None = Field(default=None, max_length=4_000, description="For the history.")

    def to_assessment(self) -> Assessment:
        """The domain's assessment with the same fields given (``null`` ones included)."""
        data = self.model_dump(exclude_unset=True, exclude={"reason", "mitigation"})
        if "mitigation" in self.model_fields_set:
            plan = self.mitigation
            data["mitigation"] = MitigationPlan(**plan.model_dump()) if plan else None
        return Assessment(**data)


class TransitionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target: RiskStatus = Field(description="The status to move to.")
    resolution_verification: str | None = Field(
        default=None, max_length=8_000, description="Required to close (unless recorded before)."
    )
    reason: str | None = Field(default=None, max_length=4_000, description="For the history.")


class RiskPage(BaseModel):
    items: list[RiskRegisterEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class TicketLinkOut(BaseModel):
    ticket_id: str
    linked_at: datetime
    cause_event_id: str | None


class HistoryItem(BaseModel):
    version: int
    kind: ChangeKind
    at: datetime
    actor: str | None
    role: Role | None
    cause_event_id: str | None
    reason: str | None
    changes: dict[str, FieldChange]


class RiskDetail(BaseModel):
    entry: RiskRegisterEntry
    information_to_risk_management: SupportBrief
    allowed_transitions: list[RiskStatus]
    tickets: list[TicketLinkOut]
    history: list[HistoryItem]


class OverdueReview(BaseModel):
    risk_id: str
    title: str
    level: RiskLevel
    status: RiskStatus
    owner: str | None
    next_review_at: datetime | None
    overdue_seconds: float | None = Field(description="Null when no review was ever scheduled.")


class OverdueReviews(BaseModel):
    at: datetime
    count: int
    items: list[OverdueReview]


# ---------------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------------

CSV_COLUMNS = (
    "risk_id",
    "version",
    "title",
    "redacted_summary",
    "level",
    "category",
    "status",
    "owner",
    "first_reported_at",
    "last_reported_at",
    "ticket_count",
    "distinct_customers",
    "customer_segments",
    "products",
    "indicators",
    "policy_version",
    "likelihood",
    "impact",
    "inherent_score",
    "residual_score",
    "treatment",
    "mitigation_strategy",
    "mitigation_owner",
    "mitigation_target_date",
    "assessment",
    "communication_template",
    "resolution_verification",
    "prevention_measures",
    "next_review_at",
    "updated_at",
    "ticket_ids",
)

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        text = "; ".join(str(item) for item in value)
    elif isinstance(value, datetime):
        text = value.isoformat()
    elif isinstance(value, int | float):
        return str(value)
    else:
        text = str(value)
    # Titles come from customers' words: keep spreadsheets from running them as formulas.
    return "'" + text if text.startswith(_FORMULA_START) else text


def entries_to_csv(entries: list[RiskRegisterEntry]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        data = entry.model_dump()
        plan = entry.mitigation
        data["mitigation_strategy"] = plan.strategy if plan else None
        data["mitigation_owner"] = plan.owner if plan else None
        data["mitigation_target_date"] = plan.target_date if plan else None
        data["level"] = int(entry.level)
        writer.writerow([_cell(data[column]) for column in CSV_COLUMNS])
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


def _filters(
    level: Annotated[list[RiskLevel] | None, Query(description="Levels (repeatable).")] = None,
    category: Annotated[list[RiskCategory] | None, Query(description="Categories.")] = None,
    status_: Annotated[
        list[RiskStatus] | None, Query(alias="status", description="Statuses.")
    ] = None,
    reported_from: Annotated[
        AwareDatetime | None,
        Query(alias="from", description="Reported at or after (overlap with the reports)."),
    ] = None,
    reported_to: Annotated[
        AwareDatetime | None, Query(alias="to", description="Reported before.")
    ] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Text in id, title or summary."),
    ] = None,
) -> store.RiskFilter:
    if reported_from is not None and reported_to is not None and reported_to <= reported_from:
        raise _invalid(("query", "to"), "must be after `from`")
    return store.RiskFilter(
        levels=level or (),
        categories=category or (),
        statuses=status_ or (),
        reported_from=reported_from,
        reported_to=reported_to,
        text=q,
    )


Filters = Annotated[store.RiskFilter, Depends(_filters)]


def build_router(register: Register) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["register"])
    context = register.context
    not_found: dict[int | str, dict[str, Any]] = {404: {"description": "unknown risk"}}

    async def _load(risk_id: str) -> RiskRegisterEntry:
        entry = await store.load_entry(context.db, risk_id)
        if entry is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown risk {risk_id}")
        return entry

    @router.get("/risks", summary="List the register, newest first, with filters.")
    async def list_risks(
        _: Reader,
        filters: Filters,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=1_000)] = None,
    ) -> RiskPage:
        after = None
        if cursor is not None:
            try:
                after = store.PageCursor.decode(cursor)
            except store.InvalidCursor as error:
                raise _invalid(("query", "cursor"), str(error)) from error
        entries, next_cursor = await store.list_entries(
            context.db, filters, limit=limit, after=after
        )
        return RiskPage(items=entries, next_cursor=next_cursor.encode() if next_cursor else None)

    @router.get(
        "/risks/export.csv",
        summary="The register (filtered like the list) as CSV.",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def export_csv(_: Reader, filters: Filters) -> Response:
        entries = await store.export_entries(context.db, filters)
        return Response(
            entries_to_csv(entries),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="risk-register.csv"'},
        )

    @router.get(
        "/risks/{risk_id}",
        summary="One risk with its tickets, history and the information for Risk Management.",
        responses={**not_found, 304: {"description": "If-None-Match matched"}},
    )
    async def get_risk(
        risk_id: RiskId,
        _: Reader,
        response: Response,
        if_none_match: Annotated[str | None, Header()] = None,
    ) -> RiskDetail:
        entry = await _load(risk_id)
        if if_none_match is not None and if_none_match_satisfied(if_none_match, entry):
            raise HTTPException(status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag(entry)})
        tickets = await store.load_ticket_links(context.db, risk_id)
        history = await store.load_history(context.db, risk_id)
        response.headers["ETag"] = etag(entry)
        return RiskDetail(
            entry=entry,
            information_to_risk_management=support_brief(entry),
            allowed_transitions=sorted(ALLOWED_TARGETS[entry.status]),
            tickets=[TicketLinkOut(**vars(link)) for link in tickets],
            history=[
                HistoryItem(kind=row.kind, **row.record.model_dump(exclude={"risk_id"}))
                for row in history
            ],
        )

    async def _write(
        risk_id: str,
        if_match: str | None,
        principal: Principal,
        kind: ChangeKind,
        change: Callable[[RiskRegisterEntry, datetime], RiskRegisterEntry],
        reason: str | None,
    ) -> RiskRegisterEntry:
        """Lock, load, check If-Match, apply ``change(entry, at)``, commit, publish."""
        at = register.now()
        async with context.db.acquire() as connection, connection.transaction():
            await store.lock_risks(connection, [risk_id])
            entry = await store.load_entry(connection, risk_id)
            if entry is None:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown risk {risk_id}")
            _require_current(if_match, entry)
            after: RiskRegisterEntry = change(entry, at)
            publishable = []
            if after is not entry:
                publishable = await register.commit(
                    connection,
                    [
                        Change(
                            kind,
                            entry,
                            after,
                            actor=principal.subject,
                            role=principal.role,
                            reason=reason,
                        )
                    ],
                )
        if after is not entry:
            register.metrics.count_changes([kind])
        await register.publish_now(publishable)
        return after

    @router.patch(
        "/risks/{risk_id}",
        summary="Record assessment, treatment, mitigation and communication fields.",
        description=(
            "Only the fields given change; a field sent as `null` is cleared, except one the "
            "risk's status depends on (422 naming it). See `AssessmentUpdate`."
        ),
        responses={
            **not_found,
            412: {"description": "If-Match is stale"},
            428: {"description": "If-Match missing"},
        },
    )
    async def patch_risk(
        risk_id: RiskId,
        update: AssessmentUpdate,
        principal: Writer,
        response: Response,
        if_match: IfMatch = None,
    ) -> RiskRegisterEntry:
        assessment = update.to_assessment()

        def change(entry: RiskRegisterEntry, at: datetime) -> RiskRegisterEntry:
            try:
                return apply_assessment(entry, assessment, at, policy=register.policy)
            except InvalidScore as error:
                raise _invalid(("body", "residual_score"), str(error)) from error
            except ClearRefused as error:
                raise _invalid(("body", error.field), str(error)) from error

        after = await _write(
            risk_id, if_match, principal, ChangeKind.ASSESSMENT, change, update.reason
        )
        response.headers["ETag"] = etag(after)
        return after

    @router.post(
        "/risks/{risk_id}/transitions",
        summary="Move a risk through its lifecycle (refusals name the allowed moves).",
        responses={
            **not_found,
            403: {"description": "role may not take this transition"},
            409: {"description": "no such transition from the current status"},
            412: {"description": "If-Match is stale"},
            428: {"description": "If-Match missing"},
        },
    )
    async def transition_risk(
        risk_id: RiskId,
        request: TransitionRequest,
        principal: Writer,
        response: Response,
        if_match: IfMatch = None,
    ) -> RiskRegisterEntry:
        def change(entry: RiskRegisterEntry, at: datetime) -> RiskRegisterEntry:
            try:
                return apply_transition(
                    entry,
                    request.target,
                    role=principal.role,
                    at=at,
                    resolution_verification=request.resolution_verification,
                    policy=register.policy,
                )
            except IllegalTransition as error:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    {
                        "message": str(error),
                        "current": error.current.value,
                        "allowed_transitions": sorted(t.value for t in error.allowed_targets),
                    },
                ) from error
            except TransitionNotPermitted as error:
                raise HTTPException(
                    status.HTTP_403_FORBIDDEN,
                    {
                        "message": str(error),
                        "allowed_roles": sorted(r.value for r in error.allowed_roles),
                    },
                ) from error
            except ResolutionVerificationRequired as error:
                raise _invalid(("body", "resolution_verification"), str(error)) from error

        after = await _write(
            risk_id, if_match, principal, ChangeKind.TRANSITION, change, request.reason
        )
        response.headers["ETag"] = etag(after)
        return after

    @router.get("/reviews/overdue", summary="Open risks whose review is due, most overdue first.")
    async def overdue(_: Reader) -> OverdueReviews:
        at = register.now()
        entries = await store.overdue_reviews(context.db, at)
        items = [
            OverdueReview(
                risk_id=entry.risk_id,
                title=entry.title,
                level=entry.level,
                status=entry.status,
                owner=entry.owner,
                next_review_at=entry.next_review_at,
                overdue_seconds=(at - entry.next_review_at).total_seconds()
                if entry.next_review_at
                else None,
            )
            for entry in entries
        ]
        return OverdueReviews(at=at, count=len(items), items=items)

    return router
