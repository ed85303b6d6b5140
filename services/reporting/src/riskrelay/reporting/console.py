"""The console: server-rendered pages for the people who act on risks, beside the dashboard.

* ``/console/risks/{risk_id}``: the risk page (:mod:`riskrelay.reporting.console_risk`).
* ``/console/register``: the Risk Register's pages (:mod:`riskrelay.reporting.console_register`).
* ``/console/login``: e-mail and password (checked against :mod:`riskrelay.reporting.people`,
  failed attempts rate-limited per account and per client address: 429 saying when to retry);
  success sets the session cookie, an HttpOnly, SameSite=Strict cookie holding the person's
  signed token (the same JWT every service verifies, see :mod:`riskrelay.shared.auth`).
* ``/console/tokens``: the person's API tokens for scripts
  (:mod:`riskrelay.reporting.console_tokens`).
* ``/console/queue``: the open escalation steps for the person's roles, most urgent first, with
  the time left to each deadline; "Acknowledge" calls the escalator's acknowledgement API with
  the person's own token, so the escalator records who acted. A Level 3 review step (the
  escalator says which steps are reviews) takes the Support Manager's decision instead:
  confirmed or not confirmed, with a note, through the same API.

Every state-changing form carries a CSRF token that must equal the HttpOnly, SameSite=Strict
``riskrelay_csrf`` cookie (double submit); a form without it is refused with 403. A page asked
for without a session redirects to the sign-in page.
"""

from __future__ import annotations

import asyncio
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import httpx
from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from riskrelay.reporting import people, store
from riskrelay.reporting.render import environment
from riskrelay.reporting.reports import level_label
from riskrelay.reporting.settings import ConsoleSettings
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import AuthenticationError, Principal, require_roles
from riskrelay.shared.clock import Clock
from riskrelay.shared.events import ReviewDecision, Role
from riskrelay.shared.logging import get_logger

log = get_logger(__name__)

SESSION_COOKIE = "riskrelay_console"
CSRF_COOKIE = "riskrelay_csrf"
CSRF_FIELD = "csrf_token"
# Register entries hold long texts (assessment, communication template): 64 KiB of form.
MAX_FORM_BYTES = 64 * 1024
ESCALATOR_CLIENT = "console_escalator_client"
REGISTER_CLIENT = "console_register_client"
STEP_KINDS = "console_step_kinds"
# Kinds of steps already asked for: an escalation id names one role's step of one kind forever.
STEP_KINDS_KEPT = 50_000
REVIEW_KIND = "review"
JUST_ACKNOWLEDGED = "console_just_acknowledged"
JUST_ACKNOWLEDGED_FOR = timedelta(minutes=5)
DECISION_LABELS = {
    ReviewDecision.CONFIRMED: "confirmed (Risk Management is told)",
    ReviewDecision.NOT_CONFIRMED: "not confirmed (the risk goes to the Weekly Risk Review)",
}


# ---------------------------------------------------------------------------------------------
# The queue (pure)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    step: store.OpenStep
    deadline: datetime | None
    seconds_left: float | None
    time_left: str
    level_label: str

    @property
    def overdue(self) -> bool:
        return self.seconds_left is not None and self.seconds_left < 0


def duration_text(seconds: float) -> str:
    """``2 d 3 h``, ``3 h 5 min``, ``4 min``, ``under a minute``."""
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min"
    return "under a minute"


def time_left_text(seconds: float | None) -> str:
    if seconds is None:
        return "no deadline"
    if seconds < 0:
        return f"overdue by {duration_text(seconds)}"
    return f"{duration_text(seconds)} left"


def queue_items(steps: list[store.OpenStep], now: datetime) -> list[QueueItem]:
    """Most urgent first: the earliest deadline (overdue ones lead), then the higher level."""
    items = []
    for step in steps:
        deadline = step.ack_due_at or step.timeframe_due_at
        seconds = (deadline - now).total_seconds() if deadline is not None else None
        items.append(
            QueueItem(step, deadline, seconds, time_left_text(seconds), level_label(step.level))
        )
    far = float("inf")
    return sorted(
        items,
        key=lambda i: (
            i.seconds_left if i.seconds_left is not None else far,
            -i.step.level,
            i.step.escalation_id,
        ),
    )


def queue_roles(principal: Principal) -> list[str] | None:
    """The roles whose steps a person sees; None (every step) for an administrator."""
    if Role.ADMIN in principal.roles:
        return None
    return sorted(role.value for role in principal.roles)


# ---------------------------------------------------------------------------------------------
# CSRF and sessions
# ---------------------------------------------------------------------------------------------


def csrf_matches(cookie: str | None, submitted: str | None) -> bool:
    if not cookie or not submitted:
        return False
    return hmac.compare_digest(cookie.encode(), submitted.encode())


async def read_form(request: Request, max_fields: int = 20) -> dict[str, str]:
    """A urlencoded form's fields (the first value of each); bigger than 64 KiB is refused."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "form too large")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError) as error:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "malformed form") from error
    return {key: values[0] for key, values in parsed.items()}


class ConsolePages:
    """Rendering and the cookies every console page shares."""

    def __init__(self, context: ServiceContext, settings: ConsoleSettings, clock: Clock) -> None:
        self.context = context
        self.settings = settings
        self.clock = clock
        self.templates = environment()

    def csrf_of(self, request: Request) -> str:
        return request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)

    def page(
        self,
        request: Request,
        template: str,
        status_code: int = 200,
        principal: Principal | None = None,
        **values: Any,
    ) -> HTMLResponse:
        csrf = self.csrf_of(request)
        body = self.templates.get_template(template).render(
            csrf_field=CSRF_FIELD, csrf_token=csrf, person=principal, **values
        )
        response = HTMLResponse(
            body,
            status_code=status_code,
            headers={
                "Content-Security-Policy": (
                    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;"
                    " script-src 'self'; connect-src 'self';"
                    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
                ),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
            },
        )
        if request.cookies.get(CSRF_COOKIE) != csrf:
            self._cookie(response, CSRF_COOKIE, csrf, max_age=None)
        return response

    def _cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            httponly=True,
            samesite="strict",
            secure=self.settings.secure_cookie,
            path="/console",
            max_age=max_age,
        )

    def start_session(self, response: Response, token: str, max_age: int | None = None) -> None:
        """Keep ``token`` as the session: the console's own for ``session_minutes``, an OIDC
        provider's ID token until its expiry (``max_age``)."""
        self._cookie(
            response,
            SESSION_COOKIE,
            token,
            max_age=max_age if max_age is not None else self.settings.session_minutes * 60,
        )

    def end_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/console")

    def session(self, request: Request) -> Principal | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        try:
            principal = self.context.tokens.authenticate(token)
        except AuthenticationError:
            return None
        return principal if principal.is_person else None

    async def submission(self, request: Request, max_fields: int = 20) -> Submission | Response:
        """The posted form of a signed-in person, or the response refusing it (no session:
        to the sign-in page; no matching CSRF token: 403)."""
        principal = self.session(request)
        if principal is None:
            return login_redirect(request)
        form = await read_form(request, max_fields)
        if (refused := self.refuse_without_csrf(request, form)) is not None:
            return refused
        return Submission(principal, form, request.cookies[SESSION_COOKIE])

    def refuse_without_csrf(self, request: Request, form: dict[str, str]) -> HTMLResponse | None:
        if csrf_matches(request.cookies.get(CSRF_COOKIE), form.get(CSRF_FIELD)):
            return None
        return self.page(
            request,
            "console_message.html.j2",
            status_code=status.HTTP_403_FORBIDDEN,
            principal=self.session(request),
            title="Form expired",
            message=(
                "This form is missing its security token or it no longer matches this browser"
                " session. Go back, reload the page and submit it again."
            ),
        )


@dataclass(frozen=True)
class Submission:
    """A console form posted by a signed-in person, its CSRF token checked."""

    principal: Principal
    form: dict[str, str]
    token: str  # the person's signed token, for the owning service's API


def client_address(request: Request) -> str:
    """The caller's address as the server sees it (behind a proxy that uvicorn trusts through
    ``FORWARDED_ALLOW_IPS``, the address the proxy saw)."""
    return request.client.host if request.client is not None else "unknown"


def retry_text(retry_at: datetime, now: datetime) -> str:
    """When to try again, both rounded up to the minute: never a moment that is still too early."""
    wait = 60.0 * max(1, math.ceil((retry_at - now).total_seconds() / 60))
    at = retry_at.astimezone(UTC)
    if at.second or at.microsecond:
        at = at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    return f"Try again in {duration_text(wait)}, after {at:%H:%M} UTC ({at:%Y-%m-%d})."


def too_many_attempts(
    pages: ConsolePages, request: Request, retry_at: datetime, now: datetime
) -> HTMLResponse:
    """429 naming when to retry; the password was not checked."""
    response = pages.page(
        request,
        "console_message.html.j2",
        status_code=status.HTTP_429_TOO_MANY_REQUESTS,
        title="Too many sign-in attempts",
        message=(
            "Sign-in is paused for this account or this network after too many failed"
            f" attempts. {retry_text(retry_at, now)}"
        ),
    )
    response.headers["Retry-After"] = str(max(1, math.ceil((retry_at - now).total_seconds())))
    return response


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        f"/console/login?next={quote(target, safe='')}", status_code=status.HTTP_303_SEE_OTHER
    )


def safe_next(target: str | None) -> str:
    """Only a console path is followed after sign-in (no open redirect)."""
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return "/console/queue"


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------


def build_console_router(
    context: ServiceContext, settings: ConsoleSettings, clock: Clock
) -> APIRouter:
    router = APIRouter(prefix="/console", tags=["console"], include_in_schema=False)
    pages = ConsolePages(context, settings, clock)

    @router.get("", response_model=None)
    async def home() -> Response:
        return RedirectResponse("/console/queue", status_code=status.HTTP_303_SEE_OTHER)

    sign_in_choices: dict[str, Any] = {
        "local_sign_in": settings.local_sign_in,
        "oidc_provider": settings.oidc.provider_name if settings.oidc is not None else None,
    }

    @router.get("/login", response_model=None)
    async def login_form(request: Request, next: str | None = None) -> Response:
        if pages.session(request) is not None:
            return RedirectResponse(safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
        if settings.oidc is not None and not settings.local_sign_in:
            return RedirectResponse(
                f"/console/oidc/start?next={quote(safe_next(next), safe='')}",
                status_code=status.HTTP_303_SEE_OTHER,
            )
        return pages.page(
            request,
            "console_login.html.j2",
            next=safe_next(next),
            error=None,
            **sign_in_choices,
        )

    @router.post("/login", response_model=None)
    async def login(request: Request) -> Response:
        form = await read_form(request)
        if (refused := pages.refuse_without_csrf(request, form)) is not None:
            return refused
        identity = context.tokens.identity
        target = safe_next(form.get("next"))
        if not settings.local_sign_in:
            return pages.page(
                request,
                "console_message.html.j2",
                status_code=status.HTTP_403_FORBIDDEN,
                title="Password sign-in is off",
                message="Sign in through your organisation's identity provider.",
            )
        if identity is None or not identity.can_sign:
            return pages.page(
                request,
                "console_login.html.j2",
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                next=target,
                **sign_in_choices,
                error=(
                    "Sign-in is not set up on this server: the reporting service needs"
                    " RISKRELAY_REPORTING_AUTH__IDENTITY_KEYS_FILE with a signing_key_id."
                ),
            )
        email, password = form.get("email", ""), form.get("password", "")
        address = client_address(request)
        async with context.db.acquire() as connection:
            attempt = await people.begin_sign_in(
                connection, email, address, settings.sign_in_limits, clock()
            )
            if isinstance(attempt, people.SignInRefused):
                log.warning("console sign-in rate-limited", client_address=address)
                return too_many_attempts(pages, request, attempt.retry_at, clock())
            check = (
                await people.check_password(connection, email, password)
                if email and password
                else people.PasswordCheck(None, people.SignInFailure.NO_PASSWORD)
            )
            await people.finish_sign_in(connection, attempt, check.failure)
        user = check.user
        if user is None:
            log.info(
                "console sign-in refused",
                client_address=address,
                reason=check.failure.value if check.failure else None,
            )
            return pages.page(
                request,
                "console_login.html.j2",
                status_code=status.HTTP_401_UNAUTHORIZED,
                next=target,
                email=email,
                error="Wrong e-mail or password.",
                **sign_in_choices,
            )
        token = identity.sign(user.person, timedelta(minutes=settings.session_minutes))
        response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
        pages.start_session(response, token)
        log.info("console sign-in", user_id=user.user_id)
        return response

    @router.post("/logout", response_model=None)
    async def logout(request: Request) -> Response:
        form = await read_form(request)
        if (refused := pages.refuse_without_csrf(request, form)) is not None:
            return refused
        target = "/console/login"
        if settings.oidc is not None:
            from riskrelay.reporting.oidc import provider_sign_out_url

            target = (
                await provider_sign_out_url(
                    context, settings.oidc, request.cookies.get(SESSION_COOKIE)
                )
                or target
            )
        response = RedirectResponse(target, status_code=status.HTTP_303_SEE_OTHER)
        pages.end_session(response)
        return response

    @router.get("/queue", response_model=None)
    async def queue(
        request: Request, done: str | None = None, failed: str | None = None
    ) -> Response:
        principal = pages.session(request)
        if principal is None:
            return login_redirect(request)
        now = clock()
        async with context.db.acquire() as connection:
            steps = await store.open_steps(connection, queue_roles(principal), now)
        steps = without_just_acknowledged(context, steps, now)
        kinds = await step_kinds(
            context, request.cookies[SESSION_COOKIE], [step.escalation_id for step in steps]
        )
        return pages.page(
            request,
            "console_queue.html.j2",
            principal=principal,
            items=queue_items(steps, now),
            kinds=kinds,
            review_kind=REVIEW_KIND,
            now=now,
            done=done,
            failed=failed,
        )

    @router.post("/escalations/{escalation_id}/ack", response_model=None)
    async def acknowledge(escalation_id: str, request: Request) -> Response:
        submitted = await pages.submission(request)
        if isinstance(submitted, Response):
            return submitted
        outcome = await acknowledge_through_escalator(
            context, submitted.token, escalation_id, note_of(submitted.form), None
        )
        return after_acknowledgement(request, submitted, escalation_id, outcome)

    @router.post("/escalations/{escalation_id}/decision", response_model=None)
    async def decide(escalation_id: str, request: Request) -> Response:
        submitted = await pages.submission(request)
        if isinstance(submitted, Response):
            return submitted
        form = submitted.form
        decision = decision_of(form.get("decision"))
        if decision is None:
            return pages.page(
                request,
                "console_message.html.j2",
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                principal=submitted.principal,
                title="Choose a decision",
                message="A Level 3 review is either confirmed or not confirmed: choose one.",
            )
        outcome = await acknowledge_through_escalator(
            context, submitted.token, escalation_id, note_of(form), decision
        )
        return after_acknowledgement(request, submitted, escalation_id, outcome)

    def after_acknowledgement(
        request: Request, submitted: Submission, escalation_id: str, outcome: AckOutcome
    ) -> Response:
        """Back to the page with the outcome; a refusal of the person's roles is a 403 page,
        like every other action the person may not take."""
        if outcome.refused_with == status.HTTP_403_FORBIDDEN:
            return pages.page(
                request,
                "console_message.html.j2",
                status_code=status.HTTP_403_FORBIDDEN,
                principal=submitted.principal,
                title="Not allowed",
                message=outcome.message,
            )
        if outcome.ok:
            just_acknowledged(context, escalation_id, clock())
        return back_to(submitted.form, outcome)

    # Imported here: the page modules build on this module's ConsolePages.
    from riskrelay.reporting.console_live import build_live_router
    from riskrelay.reporting.console_register import build_register_router
    from riskrelay.reporting.console_review import build_review_router
    from riskrelay.reporting.console_risk import build_risk_router
    from riskrelay.reporting.console_tokens import build_tokens_router
    from riskrelay.reporting.oidc import build_oidc_router

    router.include_router(build_risk_router(context, pages))
    router.include_router(build_register_router(context, pages))
    router.include_router(build_tokens_router(context, pages))
    if settings.oidc is not None:
        router.include_router(build_oidc_router(context, pages, settings.oidc))
    router.include_router(build_live_router(context, pages))
    router.include_router(build_review_router(context, pages))
    return router


def just_acknowledged(context: ServiceContext, escalation_id: str, now: datetime) -> None:
    """Remember a step this console acknowledged, until the read model has caught up."""
    acted: dict[str, datetime] = context.state.setdefault(JUST_ACKNOWLEDGED, {})
    for known, at in list(acted.items()):
        if now - at > JUST_ACKNOWLEDGED_FOR:
            del acted[known]
    acted[escalation_id] = now


def without_just_acknowledged(
    context: ServiceContext, steps: list[store.OpenStep], now: datetime
) -> list[store.OpenStep]:
    """The queue without the steps acknowledged here moments ago: the escalator has closed
    them, and the acknowledgement event is on its way to the read model."""
    acted: dict[str, datetime] = context.state.get(JUST_ACKNOWLEDGED, {})
    return [
        step
        for step in steps
        if step.escalation_id not in acted
        or now - acted[step.escalation_id] > JUST_ACKNOWLEDGED_FOR
    ]


def note_of(form: dict[str, str]) -> str | None:
    return form.get("note", "").strip()[:4_000] or None


def decision_of(value: str | None) -> ReviewDecision | None:
    try:
        return ReviewDecision(value) if value else None
    except ValueError:
        return None


def back_to(form: dict[str, str], outcome: AckOutcome) -> RedirectResponse:
    """Back to the page the form was on (a console path), with the outcome to show."""
    target = safe_next(form.get("next"))
    key = "done" if outcome.ok else "failed"
    separator = "&" if "?" in target else "?"
    return RedirectResponse(
        f"{target}{separator}{key}={quote(outcome.message, safe='')}",
        status_code=status.HTTP_303_SEE_OTHER,
    )


@dataclass(frozen=True)
class AckOutcome:
    ok: bool
    message: str
    refused_with: int | None = None  # the escalator's status when it refused


async def acknowledge_through_escalator(
    context: ServiceContext,
    token: str,
    escalation_id: str,
    note: str | None,
    decision: ReviewDecision | None,
) -> AckOutcome:
    """POST the acknowledgement (a review's with its decision) to the escalator as the
    signed-in person."""
    client: httpx.AsyncClient = context.state[ESCALATOR_CLIENT]
    body: dict[str, str] = {}
    if note:
        body["note"] = note
    if decision is not None:
        body["decision"] = decision.value
    try:
        response = await client.post(
            f"/v1/escalations/{quote(escalation_id, safe='')}/ack",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
    except httpx.HTTPError as error:
        log.warning("escalator unreachable", error=type(error).__name__)
        return AckOutcome(False, "The escalator did not answer; nothing was acknowledged.")
    if response.status_code == 200:
        answer = response.json()
        if answer.get("status") == "already_closed":
            return AckOutcome(True, f"Step {escalation_id} was already closed.")
        late = " (late)" if answer.get("late") else ""
        if decision is not None:
            return AckOutcome(
                True,
                f"Recorded your Level 3 decision on step {escalation_id}{late}:"
                f" {DECISION_LABELS[decision]}.",
            )
        return AckOutcome(True, f"Acknowledged step {escalation_id}{late}.")
    try:
        detail = str(response.json().get("detail"))
    except ValueError:
        detail = response.text[:200]
    return AckOutcome(
        False, f"The escalator refused ({response.status_code}): {detail}", response.status_code
    )


async def step_kinds(
    context: ServiceContext, token: str, escalation_ids: list[str]
) -> dict[str, str]:
    """Each step's kind (``acknowledge``, ``review``, ``weekly_review``) as the escalator has it,
    asked once per step (with the person's token) and kept: the read model does not carry it.
    A step the escalator could not answer for is left out (its row offers Acknowledge, and the
    escalator refuses that for a review, saying it needs a decision)."""
    known: dict[str, str] = context.state.setdefault(STEP_KINDS, {})
    missing = [escalation_id for escalation_id in escalation_ids if escalation_id not in known]
    if missing:
        client: httpx.AsyncClient = context.state[ESCALATOR_CLIENT]
        limit = asyncio.Semaphore(8)

        async def ask(escalation_id: str) -> tuple[str, str | None]:
            async with limit:
                try:
                    response = await client.get(
                        f"/v1/escalations/{quote(escalation_id, safe='')}",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                except httpx.HTTPError:
                    return escalation_id, None
            if response.status_code != 200:
                return escalation_id, None
            kind = response.json().get("kind")
            return escalation_id, kind if isinstance(kind, str) else None

        answers = await asyncio.gather(*(ask(escalation_id) for escalation_id in missing))
        if len(known) > STEP_KINDS_KEPT:
            known.clear()
        known.update({escalation_id: kind for escalation_id, kind in answers if kind})
    return {
        escalation_id: known[escalation_id]
        for escalation_id in escalation_ids
        if escalation_id in known
    }


async def open_escalator_client(context: ServiceContext, settings: ConsoleSettings) -> None:
    """The console's clients of the services it acts through: the escalator and the register."""
    for key, url in (
        (ESCALATOR_CLIENT, settings.escalator_url),
        (REGISTER_CLIENT, settings.register_url),
    ):
        context.state[key] = httpx.AsyncClient(
            base_url=str(url).rstrip("/"), timeout=settings.request_timeout_seconds
        )


async def close_escalator_client(context: ServiceContext) -> None:
    for key in (ESCALATOR_CLIENT, REGISTER_CLIENT):
        client: httpx.AsyncClient | None = context.state.pop(key, None)
        if client is not None:
            await client.aclose()


# ---------------------------------------------------------------------------------------------
# People, for administrators (and `riskrelay dev up`)
# ---------------------------------------------------------------------------------------------


class UserView(BaseModel):
    user_id: str
    email: str
    name: str
    roles: list[Role]
    disabled: bool


def _view(user: people.ConsoleUser) -> UserView:
    return UserView(
        user_id=user.user_id,
        email=user.email,
        name=user.name,
        roles=user.roles,
        disabled=user.disabled,
    )


ADMINS = require_roles(Role.ADMIN)


def build_users_router(context: ServiceContext, clock: Clock) -> APIRouter:
    router = APIRouter(prefix="/v1/console/users", tags=["console users"])

    @router.put(
        "/{email}",
        summary="Create or replace a console user (name, roles, password).",
        responses={201: {"description": "created"}, 422: {"description": "invalid fields"}},
    )
    async def put_user(
        email: str,
        fields: people.UserFields,
        response: Response,
        _: Annotated[Principal, Depends(ADMINS)],
    ) -> UserView:
        if not people.valid_email(email):
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "not an e-mail address")
        async with context.db.acquire() as connection:
            user, created = await people.put_user(connection, email, fields, clock())
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return _view(user)

    @router.get("", summary="Every console user (no password hashes).")
    async def list_users(_: Annotated[Principal, Depends(ADMINS)]) -> list[UserView]:
        async with context.db.acquire() as connection:
            return [_view(user) for user in await people.list_users(connection)]

    return router


class SignInFailureView(BaseModel):
    email: str
    client_address: str
    attempted_at: datetime
    failure: str | None


def build_sign_in_failures_router(context: ServiceContext, clock: Clock) -> APIRouter:
    router = APIRouter(prefix="/v1/console", tags=["console users"])

    @router.get(
        "/sign-in-failures",
        summary="Failed console sign-ins, newest first (the e-mail typed, address, reason).",
    )
    async def sign_in_failures(
        _: Annotated[Principal, Depends(ADMINS)],
        hours: Annotated[int, Query(ge=1, le=24 * 30)] = 24,
    ) -> list[SignInFailureView]:
        async with context.db.acquire() as connection:
            found = await people.recent_sign_in_failures(
                connection, clock() - timedelta(hours=hours)
            )
        return [
            SignInFailureView(
                email=f.email,
                client_address=f.client_address,
                attempted_at=f.attempted_at,
                failure=f.failure,
            )
            for f in found
        ]

    return router
