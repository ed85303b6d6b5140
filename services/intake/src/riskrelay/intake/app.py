"""Composition root of the intake service: settings in, ASGI app out; nothing runs at import."""

from __future__ import annotations

from fastapi import FastAPI

from riskrelay import intake as package
from riskrelay.intake.handlers import configure
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.app import create_service_app


def create_app(settings: IntakeSettings) -> FastAPI:
    return create_service_app(
        settings,
        title="riskrelay intake",
        description=(package.__doc__ or "").strip(),
        configure=configure,
        migrations_package="riskrelay.intake",
    )
