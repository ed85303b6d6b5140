"""Schema-driven fuzzing of every service's HTTP API from its own OpenAPI document.

Each service runs as a real process (``python -m riskrelay.<service>``) on the session's broker
and PostgreSQL. Schemathesis generates requests from the service's ``/openapi.json``; for every
generated request the test checks:

* with a valid token (the admin role): never a 5xx;
* with no token and with a wrong token: never a 2xx on a protected operation (deny by default).

The operational endpoints (health, readiness, metrics, API documents, the dashboard page)
are public by design and are fuzzed for 5xx only.

The console's forms are not in the OpenAPI documents: they are fuzzed from the reporting app's
own routes (every POST under /console) with generated form bodies, as a signed-in person with
and without the CSRF token; never a 5xx, and a body that is no readable form is a 4xx.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from riskrelay.devstack import free_port, wait_for_port
from riskrelay.shared.events import Role
from riskrelay.shared.settings import DatabaseSettings, KafkaSettings
from tests.integration.test_console import (
    console_client,
    console_stack,
    csrf_of,
    signed_in_person,
)
from tests.integration.test_console_authorization import RULES, console_routes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVICES = ["intake", "classifier", "escalator", "register", "reporting"]
PUBLIC_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs/asyncapi",
    "/docs/asyncapi.json",
    "/dashboard",
}
ADMIN_TOKEN = "fuzz-admin-token-0123456789"
AGENT_TOKEN = "fuzz-agent-token-0123456789"
EXAMPLES = int(os.environ.get("RISKRELAY_FUZZ_EXAMPLES", "25"))


@pytest.fixture(scope="module")
def tokens_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "tokens.json"
    path.write_text(json.dumps({"admin": ADMIN_TOKEN, "agent": AGENT_TOKEN}))
    return path


@pytest.fixture(params=SERVICES)
def service_url(
    request: pytest.FixtureRequest,
    kafka_endpoint: object,
    database_endpoint: object,
    tokens_file: Path,
    tmp_path: Path,
) -> Iterator[str]:
    name: str = request.param
    port = free_port()
    prefix = f"RISKRELAY_{name.upper()}_"
    schema = f"fuzz_{name}_{os.getpid()}"
    env = {
        **os.environ,
        f"{prefix}KAFKA__BOOTSTRAP": kafka_endpoint.bootstrap,  # type: ignore[attr-defined]
        f"{prefix}KAFKA__TOPIC_PREFIX": f"fuzz-{name}.",
        f"{prefix}DATABASE__URL": database_endpoint.url,  # type: ignore[attr-defined]
        f"{prefix}DATABASE__SCHEMA_NAME": schema,
        f"{prefix}HTTP__PORT": str(port),
        f"{prefix}AUTH__TOKENS_FILE": str(tokens_file),
        f"{prefix}LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", f"riskrelay.{name}"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port("127.0.0.1", port, 90, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
    if process.returncode not in (0, -15):
        pytest.fail(
            f"{name} exited with {process.returncode}: {(tmp_path / f'{name}.log').read_text()[-3000:]}"
        )


def test_no_server_errors_and_no_access_without_a_valid_token(service_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{service_url}/openapi.json")
    session = requests.Session()
    problems: list[str] = []
    exercised: dict[str, int] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "the service documents no operations"

    for operation in operations:
        try:
            _fuzz(operation, service_url, session, problems, exercised)
        except Unsatisfiable:
            continue
        assert not problems, "\n".join(sorted(set(problems))[:20])
    assert len(exercised) >= len(operations) - 1, f"operations never exercised: {exercised}"


def _fuzz(
    operation: Any,
    service_url: str,
    session: requests.Session,
    problems: list[str],
    exercised: dict[str, int],
) -> None:
    public = operation.path in PUBLIC_PATHS

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def exercise(case: schemathesis.Case) -> None:
        exercised[operation.label] = exercised.get(operation.label, 0) + 1
        with_token = case.call(
            base_url=service_url,
            session=session,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        if with_token.status_code >= 500:
            problems.append(
                f"{case.method} {case.formatted_path} -> {with_token.status_code}: "
                f"{with_token.text[:300]}"
            )
        if public:
            return
        for headers in ({}, {"Authorization": "Bearer not-a-real-token-at-all"}):
            anonymous = case.call(
                base_url=service_url, session=session, headers=headers, timeout=30
            )
            if anonymous.status_code < 400 or anonymous.status_code >= 500:
                problems.append(
                    f"{case.method} {case.formatted_path} without a valid token -> "
                    f"{anonymous.status_code}"
                )

    exercise()


# ---------------------------------------------------------------------------------------------
# The console's forms (left out of the OpenAPI documents): every POST route the app serves
# under /console, found from its routes, gets fuzzed form bodies as a signed-in person.
# ---------------------------------------------------------------------------------------------

CONSOLE_FIELDS = [
    *("csrf_token", "next", "note", "decision", "token", "kind", "ticket_id", "risk_id"),
    *("correct_level", "indicator", "form_key", "owner", "assessment", "likelihood", "impact"),
    *("residual_score", "treatment", "mitigation_strategy", "mitigation_owner", "reason"),
    *("mitigation_target_date", "was_owner", "was_likelihood", "reviewed", "target"),
    *("resolution_verification", "agenda", "action", "level", "etag", "name", "days"),
    *("email", "password"),
]
# Values a form field can carry from a browser or a script: anything, with the characters a
# database or a parser chokes on (NUL, controls, long runs) more often than chance.
FIELD_VALUE = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["", "\x00", "a\x00b", "%", "%zz", "\ud7ff", "0", "-1", "9" * 40, " "]),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=10),
    st.just("x" * 5_000),
)


@dataclass(frozen=True)
class ConsolePost:
    path: str
    body: bytes
    content_type: str
    with_csrf: bool
    malformed: bool  # not a urlencoded form the console can read: must be a 4xx


def console_posts(paths: list[str]) -> st.SearchStrategy[ConsolePost]:
    segment = st.one_of(
        st.from_regex(r"[A-Za-z0-9_.-]{1,30}", fullmatch=True),
        st.sampled_from(["%00", "%2F..%2F", "%ff", "%20", "a" * 300, "%E2%80%AE"]),
    )

    @st.composite
    def post(draw: st.DrawFn) -> ConsolePost:
        template = draw(st.sampled_from(paths))
        path = re.sub(r"\{[^}]+\}", lambda _: draw(segment), template)
        with_csrf = draw(st.sampled_from([True, True, True, False]))  # mostly past the CSRF check
        shape = draw(
            st.sampled_from(
                ["near_valid", "near_valid", "form", "form", "bytes", "huge", "many", "json"]
            )
        )
        if shape == "near_valid":
            # A form that passes the console's checks but for one field: the deepest paths.
            fields = dict(RULES[("POST", template)].fields)
            fields[draw(st.sampled_from([*fields, *CONSOLE_FIELDS]))] = draw(FIELD_VALUE)
            return ConsolePost(path, urlencode(fields).encode(), FORM, with_csrf, False)
        if shape == "form":
            names = st.one_of(st.sampled_from(CONSOLE_FIELDS), st.text(max_size=20))
            fields = draw(st.lists(st.tuples(names, FIELD_VALUE), max_size=12))
            return ConsolePost(path, urlencode(fields).encode(), FORM, with_csrf, False)
        if shape == "bytes":
            raw = draw(st.binary(min_size=1, max_size=200).filter(not_utf8))
            return ConsolePost(path, raw, FORM, with_csrf, True)
        if shape == "huge":
            return ConsolePost(path, b"note=" + b"x" * 70_000, FORM, with_csrf, True)
        if shape == "many":
            many = "&".join(f"f{i}=v" for i in range(80)).encode()
            return ConsolePost(path, many, FORM, with_csrf, True)
        payload = json.dumps(draw(st.dictionaries(st.sampled_from(CONSOLE_FIELDS), FIELD_VALUE)))
        return ConsolePost(path, payload.encode(), "application/json", with_csrf, False)

    return post()


FORM = "application/x-www-form-urlencoded"
# What a header, a database text column or a log line cannot take.
POISONS = ["a\x00b", "\r\nX-Injected: 1", "\x01\x18", '"v1"\t']
POISONED_FIELDS = ["etag", "note", "name", "email", "owner", "token", "ticket_id", "risk_id"]
POISONED_FIELDS += ["next", "form_key", "reason", "target", "decision", "kind"]


def poisoned_posts(paths: list[str]) -> list[ConsolePost]:
    """Each action's passing form with one field poisoned, always (chance may miss them)."""
    posts = []
    for template in paths:
        base = RULES[("POST", template)].fields
        path = re.sub(r"\{[^}]+\}", "risk-x", template)
        for name in POISONED_FIELDS:
            for poison in POISONS:
                body = urlencode({**base, name: poison}).encode()
                posts.append(ConsolePost(path, body, FORM, True, False))
    return posts


def not_utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return True
    return False


async def test_console_forms_answer_fuzzed_bodies_without_a_server_error(
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
        # Every role at once: the deepest path through each action's checks.
        roles = [role.value for role in Role if role is not Role.UPSTREAM]
        await signed_in_person(person, "fuzz@example.org", "Fuzz Everyone", roles)
        csrf = csrf_of(await person.get("/console/tokens"))
        paths = sorted(
            path
            for method, path in console_routes(stack.reporting)
            if method == "POST" and path != "/console/logout"  # that one ends the session
        )
        assert len(paths) >= 10, paths
        samples: list[ConsolePost] = []

        @settings(
            max_examples=EXAMPLES * len(paths),
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(post=console_posts(paths))
        def collect(post: ConsolePost) -> None:
            samples.append(post)

        collect()
        samples.extend(poisoned_posts(paths))
        problems: list[str] = []
        exercised: set[str] = set()
        for post in samples:
            body = post.body
            if post.with_csrf and post.content_type == FORM and not post.malformed:
                body = f"csrf_token={csrf}&".encode() + body
            answer = await person.post(
                post.path, content=body, headers={"Content-Type": post.content_type}
            )
            exercised.add(post.path.split("/")[2])
            where = f"POST {post.path[:80]} {body[:120]!r} -> {answer.status_code}"
            if answer.status_code >= 500:
                problems.append(f"{where}: {answer.text[-300:]}")
            elif post.malformed and not 400 <= answer.status_code < 500:
                problems.append(f"{where} (a malformed body must be a 4xx)")
        assert not problems, "\n".join(problems[:20])
        assert exercised >= {"login", "escalations", "register", "review", "feedback", "tokens"}
