"""Publish the contracts: each service's AsyncAPI document and its HTTP API's OpenAPI document.

``python -m riskrelay.contracts [DIR]`` (``make contracts``) writes ``<service>.asyncapi.json`` and
``<service>.openapi.json`` for every service into DIR (default ``docs/contracts``). Each app is
built with its own ``create_app`` and default settings that ignore the environment and secrets, so
the output depends on the code alone; nothing connects while an app is created. The AsyncAPI
document is :func:`riskrelay.shared.asyncapi.build_document` of what the service's ``configure``
registered (topics consumed and published), with the event models' JSON Schemas; the running
service serves the same at ``/docs/asyncapi.json`` and ``/docs/asyncapi``. The JSON is
stable (sorted keys, two-space indent, trailing newline) so a diff shows only real changes, and
``tests/unit/deploy/test_contracts.py`` fails when the committed files drift from the code.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from riskrelay.shared.app import asyncapi_document
from riskrelay.shared.settings import ServiceSettings

SERVICES: tuple[str, ...] = ("intake", "classifier", "escalator", "register", "reporting")
DEFAULT_OUT_DIR = Path("docs/contracts")


def settings_class(service: str) -> type[ServiceSettings]:
    """The service's settings class, e.g. ``riskrelay.intake.settings.IntakeSettings``."""
    module = importlib.import_module(f"riskrelay.{service}.settings")
    found: type[ServiceSettings] = getattr(module, f"{service.capitalize()}Settings")
    return found


def offline_settings(service: str) -> ServiceSettings:
    """The service's settings at their defaults, whatever the environment or secrets dir holds."""
    base = settings_class(service)

    class Offline(base):  # type: ignore[valid-type,misc]
        # No secrets are read, so the secrets options of the base have nothing to configure.
        model_config = SettingsConfigDict(secrets_dir=None, secrets_nested_delimiter=None)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (init_settings,)

    settings: ServiceSettings = Offline()
    return settings


def build_app(service: str) -> FastAPI:
    """The service's ASGI app, created (not started) with offline settings."""
    module = importlib.import_module(f"riskrelay.{service}.app")
    create_app: Callable[[ServiceSettings], FastAPI] = module.create_app
    return create_app(offline_settings(service))


def stable_json(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def documents(service: str) -> dict[str, dict[str, Any]]:
    """File name -> document, for one service."""
    app = build_app(service)
    return {
        f"{service}.asyncapi.json": asyncapi_document(app),
        f"{service}.openapi.json": app.openapi(),
    }


def generate(out_dir: Path) -> list[Path]:
    """Write every service's AsyncAPI and OpenAPI documents into ``out_dir``; return the paths.

    Files of services that no longer exist are left alone (delete them by hand)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for service in SERVICES:
        for name, document in documents(service).items():
            path = out_dir / name
            path.write_text(stable_json(document), encoding="utf-8")
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0] in ("-h", "--help")):
        sys.stderr.write("usage: python -m riskrelay.contracts [DIR]  (default: docs/contracts)\n")
        return 2
    out_dir = Path(args[0]) if args else DEFAULT_OUT_DIR
    for path in generate(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
