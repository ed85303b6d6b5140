"""Input PostgreSQL refuses is a 4xx, never a 500 (found by fuzzing the escalator's list API)."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import APIRouter

from riskrelay.shared.app import ServiceContext, create_service_app
from riskrelay.shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


def configure(context: ServiceContext) -> None:
    router = APIRouter()

    @router.get("/v1/things")
    async def things(name: str) -> dict[str, str]:
        if "\x00" in name:
            raise asyncpg.exceptions.CharacterNotInRepertoireError(
                'invalid byte sequence for encoding "UTF8": 0x00'
            )
        return {"name": name}

    context.routers.append(router)


async def test_a_nul_character_postgresql_refuses_is_a_422() -> None:
    app = create_service_app(
        ServiceSettings(service_name="probe"),
        title="probe",
        description="probe",
        configure=configure,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://x"
    ) as client:
        refused = await client.get("/v1/things", params={"name": "a\x00b"})
        accepted = await client.get("/v1/things", params={"name": "ab"})
    assert refused.status_code == 422
    assert "NUL character" in refused.json()["detail"]
    assert accepted.status_code == 200
