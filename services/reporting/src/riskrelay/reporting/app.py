"""Composition root of the reporting service: settings in, ASGI app out; nothing runs at import."""

from __future__ import annotations

from fastapi import FastAPI

from riskrelay import reporting as package
from riskrelay.reporting.handlers import configure
from riskrelay.reporting.settings import ReportingSettings
from riskrelay.shared.app import create_service_app


def create_app(settings: ReportingSettings) -> FastAPI:
    return create_service_app(
        settings,
        title="riskrelay reporting",
        description=(package.__doc__ or "").strip(),
        configure=configure,
        migrations_package="riskrelay.reporting",
    )
