"""Composition root of the classifier service: settings in, ASGI app out; nothing runs at import."""

from __future__ import annotations

from fastapi import FastAPI

from riskrelay import classifier as package
from riskrelay.classifier.handlers import configure
from riskrelay.classifier.settings import ClassifierSettings
from riskrelay.shared.app import create_service_app


def create_app(settings: ClassifierSettings) -> FastAPI:
    return create_service_app(
        settings,
        title="riskrelay classifier",
        description=(package.__doc__ or "").strip(),
        configure=configure,
        migrations_package="riskrelay.classifier",
    )
