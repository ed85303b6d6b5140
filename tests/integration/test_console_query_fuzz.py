"""Every GET route of reporting, found from the app's own routes, answers hostile query strings
and path parameters without a server error, on the real broker and PostgreSQL.

A person holding every role is signed in (the session cookie for the console, the same signed
token as the bearer for the API), so each request reaches the route's own code. Each route is
asked with its own query parameters and with unknown ones set to hostile values (10,000
characters, invalid dates, negative, huge and non-numeric numbers, NUL and control characters,
percent-encodings that are no UTF-8, unicode, ``..``, SQL), with parameters repeated, and with
its path parameters replaced by such values. Every answer must be below 500, and a 4xx must say
what was wrong in words (a JSON ``detail`` or a page with text).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from riskrelay.shared.auth import PERSON_ROLES
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from riskrelay.testing import produce
from tests.integration.test_console import (
    classified,
    console_client,
    console_stack,
    page_when,
    signed_in_person,
)
from tests.integration.test_console_oidc import CALLBACK, CLIENT_ID, CLIENT_SECRET, oidc_stack
from tests.oidc_provider import Client, Provider, running_provider

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# What httpx encodes as a query string (its own type, so lists of pairs type-check).
Params = list[tuple[str, str | int | float | bool | None]]

RISK_ID = "risk-fuzz1"
HUGE = "9" * 10_000
HOSTILE_VALUES = [
    "",
    "x" * 10_000,
    HUGE,
    "-1",
    "0",
    "-99999999999999999999",
    "99999999999999999999",
    "1e308",
    "NaN",
    "inf",
    "1.5",
    "abc",
    "2026-13-45",
    "2026-02-30",
    "0000-00-00",
    "9999-12-31T23:59:59+99:00",
    "-2026-01-01",
    "2026-W99",
    "2026-00",
    "\x00",
    "a\x00b",
    "\x01\x02\x1b[31m\x7f",
    "\r\nSet-Cookie: fuzz=1",
    "\t \n",
    "ümlaut ÆØÅ",
    "日本語のテキスト",
    "\u202egnp.exe",
    "\U0001f600" * 50,
    "\ufeff\u200b",
    "..",
    "../../../../etc/passwd",
    "%2e%2e%2f",
    "/console/../v1",
    "' OR '1'='1",
    "1; DROP TABLE console_users; --",
    "%_\\",
    '"><script>alert(1)</script>',
    "{}",
    "[]",
    "null",
    "true",
    # Well-formed but at the edges of what a period, a count or a date can hold.
    "0001-W01",
    "9999-W52",
    "9999-W53",
    "2020-W53",
    "2026-W53",
    "0000-W01",
    "0001-01",
    "9999-12",
    "0000-12",
    "0001-01-01",
    "9999-12-31",
    "2147483648",
    "9223372036854775808",
    "-9223372036854775809",
    "-0",
]
# Raw query strings httpx would otherwise encode: broken percent-encodings and bytes that are
# no UTF-8.
RAW_QUERIES = ["%ff%fe", "%zz", "%", "%00", "%c0%af", "a=%ff&b=%80%80", "&&&==&", "=x", "x=="]
# Parameters no route declares, plus the names pages and reports commonly take.
EXTRA_PARAMS = [
    "unknown",
    "page",
    "cursor",
    "limit",
    "size",
    "offset",
    "from",
    "to",
    "since",
    "until",
    "week",
    "month",
    "year",
    "date",
    "level",
    "category",
    "status",
    "sort",
    "q",
    "next",
    "token",
    "hours",
    "format",
]


@pytest.fixture
def provider() -> Iterator[Provider]:
    with running_provider() as provider:
        provider.clients[CLIENT_ID] = Client(CLIENT_ID, CLIENT_SECRET, [CALLBACK])
        yield provider


def get_routes(app: FastAPI) -> list[tuple[str, list[str]]]:
    """Each GET path template the app serves, with the query parameters its handler declares."""
    found: dict[str, list[str]] = {}
    for route in iter_route_contexts(app.routes):
        if not route.methods or "GET" not in route.methods or not route.path:
            continue
        dependant = getattr(route, "dependant", None)
        names = [param.alias for param in dependant.query_params] if dependant is not None else []
        found.setdefault(route.path, [])
        found[route.path] += [name for name in names if name not in found[route.path]]
    return sorted(found.items())


def with_path(template: str, value: str) -> str:
    return re.sub(r"\{[^}]+\}", quote(value, safe=""), template)


def plausible(template: str) -> str:
    """The template with a path parameter that names something that exists."""
    return with_path(template, RISK_ID)


def hostile_requests(path: str, query_names: list[str]) -> Iterator[tuple[str, Params | None]]:
    """(url, params) pairs: params is what httpx encodes, or None when the url holds the query."""
    target = plausible(path)
    extras = [name for name in EXTRA_PARAMS if name not in query_names]
    names = query_names + extras
    for name in query_names:
        for value in HOSTILE_VALUES:
            yield target, [(name, value)]
    # A handler never reads a parameter it does not declare: all of them at once is enough.
    for value in HOSTILE_VALUES:
        # httpx refuses a query over 64 KiB: long values go a few parameters at a time.
        step = len(extras) if len(value) < 1_000 else 3
        for start in range(0, len(extras), step):
            yield target, [(name, value) for name in extras[start : start + step]]
    for name in names:
        yield target, [(name, "1"), (name, "2"), (name, HUGE)]
    yield target, [(name, value) for name in names for value in ("-1", "abc")]
    yield target, [("unknown", "x")] * 200
    for raw in RAW_QUERIES:
        yield f"{target}?{raw}", None
        for name in query_names:
            yield f"{target}?{name}={raw}", None
    if "{" in path:
        for value in HOSTILE_VALUES:
            if value in ("", "..", "/console/../v1") or "/" in value:
                # An empty or dot segment is another path, resolved before any route.
                continue
            yield with_path(path, value), None
            yield with_path(path, value), [(name, value) for name in query_names]
        for raw in ("%ff%fe", "%00", "%2F", "%c0%af", "%25"):
            yield re.sub(r"\{[^}]+\}", raw, path), None


def problem(response: httpx.Response) -> str | None:
    """Why the answer is unacceptable, or None."""
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.text[:300]}"
    if not 400 <= status < 500:
        return None
    if "invalid byte sequence" in response.text:
        return f"{status} in PostgreSQL's words: {response.text[:200]!r}"
    content_type = response.headers.get("content-type", "")
    if "json" in content_type:
        try:
            body = response.json()
        except json.JSONDecodeError:
            return f"{status} with a body that is no JSON: {response.text[:200]!r}"
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, str) and detail.strip():
            return None
        if (
            isinstance(detail, list)
            and detail
            and all(isinstance(item, dict) and str(item.get("msg", "")).strip() for item in detail)
        ):
            return None
        return f"{status} without a message: {response.text[:200]!r}"
    text = response.text
    if "html" in content_type:
        text = html.unescape(re.sub(r"<(script|style)\b.*?</\1>|<[^>]+>", " ", text, flags=re.S))
    if len(" ".join(text.split())) < 5:
        return f"{status} without a message: {response.text[:200]!r}"
    return None


async def fuzzed(client: httpx.AsyncClient, routes: list[tuple[str, list[str]]]) -> list[str]:
    """Each route asked every hostile request; what went wrong, if anything."""
    problems: list[str] = []
    asked = 0
    for path, query_names in routes:
        for url, params in hostile_requests(path, query_names):
            asked += 1
            try:
                answer = await client.get(url, params=params)
            except httpx.HTTPError as error:
                problems.append(f"GET {url[:100]} {str(params)[:100]}: {error!r}")
                continue
            if (why := problem(answer)) is not None:
                problems.append(f"GET {url[:100]} {str(params)[:100]} -> {why}")
    assert asked > 100 * len(routes)
    return problems


async def test_every_get_route_answers_hostile_queries_without_a_server_error(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
) -> None:
    async with (
        console_stack(
            kafka_settings, database_settings, db_schema, tmp_path, with_register=True
        ) as stack,
        console_client(stack.reporting) as person,
    ):
        roles = [role.value for role in PERSON_ROLES]
        await signed_in_person(person, "all-roles@example.org", "All Roles", roles)
        session = person.cookies.get("riskrelay_console")
        assert session
        person.headers["Authorization"] = f"Bearer {session}"
        await produce(
            kafka_settings.bootstrap,
            f"{kafka_settings.topic_prefix}risk-classified",
            [(RISK_ID.encode(), classified(RISK_ID, datetime.now(UTC)).to_json_bytes())],
        )
        await page_when(person, f"/console/risks/{RISK_ID}", "other customers", timeout=60)

        routes = get_routes(stack.reporting)
        paths = {path for path, _ in routes}
        assert {"/console/queue", "/console/risks/{risk_id}", "/v1/reports/weekly"} <= paths
        # The provider sign-in's routes exist only with a provider: the next test asks them.
        assert not any(path.startswith("/console/oidc/") for path in paths)
        problems = await fuzzed(person, routes)
        assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


async def test_the_provider_sign_in_routes_answer_hostile_queries_without_a_server_error(
    kafka_settings: KafkaSettings,
    database_settings: DatabaseSettings,
    db_schema: str,
    tmp_path: Path,
    provider: Provider,
) -> None:
    async with (
        oidc_stack(kafka_settings, database_settings, db_schema, tmp_path, provider) as stack,
        console_client(stack.reporting) as person,
    ):
        roles = [role.value for role in PERSON_ROLES]
        await signed_in_person(person, "all-roles@example.org", "All Roles", roles)
        routes = [
            (path, names)
            for path, names in get_routes(stack.reporting)
            if path.startswith("/console/oidc/")
        ]
        assert [path for path, _ in routes] == ["/console/oidc/callback", "/console/oidc/start"]
        problems = await fuzzed(person, routes)
        # The same without a session: a provider's callback usually arrives before one exists.
        async with console_client(stack.reporting) as visitor:
            problems += await fuzzed(visitor, routes)
        assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])
