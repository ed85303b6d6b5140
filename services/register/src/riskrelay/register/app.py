"""Composition root of the register service: settings in, ASGI app out; nothing runs at import."""

from __future__ import annotations

from fastapi import FastAPI

from riskrelay import register as package
from riskrelay.register.handlers import configure
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.app import create_service_app


def create_app(settings: RegisterSettings) -> FastAPI:
    return create_service_app(
        settings,
        title="riskrelay register",
        description=(package.__doc__ or "").strip(),
        configure=configure,
        migrations_package="riskrelay.register",
    )
