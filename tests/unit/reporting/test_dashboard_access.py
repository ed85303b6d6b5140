"""Who may open the dashboard: any reporting role a caller holds, not only their first."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import HTTPException

from riskrelay.reporting.handlers import dashboard_principal
from riskrelay.shared.app import ServiceContext
from riskrelay.shared.auth import Principal, Role

pytestmark = pytest.mark.unit


def context_for(principal: Principal) -> ServiceContext:
    tokens = SimpleNamespace(lookup=lambda token: principal if token == "t" else None)
    return cast(ServiceContext, cast(Any, SimpleNamespace(tokens=tokens, settings=None)))


def test_a_person_whose_first_role_is_agent_but_who_is_admin_may_view() -> None:
    person = Principal(
        subject="p-1",
        role=Role.AGENT,
        roles=frozenset({Role.AGENT, Role.ADMIN}),
        email="ada@example.com",
    )
    assert dashboard_principal(context_for(person), "t") is person


def test_an_agent_alone_is_refused_naming_the_roles_held() -> None:
    agent = Principal(subject="p-2", role=Role.AGENT, email="bo@example.com")
    with pytest.raises(HTTPException) as refused:
        dashboard_principal(context_for(agent), "t")
    assert refused.value.status_code == 403
    assert "agent" in str(refused.value.detail)


def test_an_unknown_token_is_401() -> None:
    agent = Principal(subject="p-2", role=Role.AGENT)
    with pytest.raises(HTTPException) as refused:
        dashboard_principal(context_for(agent), "other")
    assert refused.value.status_code == 401
