"""Composition root of the escalator service: settings in, ASGI app out; nothing runs at import."""

from __future__ import annotations

from fastapi import FastAPI

from riskrelay import escalator as package
from riskrelay.escalator.handlers import configure
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.shared.app import create_service_app


def create_app(settings: EscalatorSettings) -> FastAPI:
    return create_service_app(
        settings,
        title="riskrelay escalator",
        description=(package.__doc__ or "").strip(),
        configure=configure,
        migrations_package="riskrelay.escalator",
    )
