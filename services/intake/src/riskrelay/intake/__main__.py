"""`python -m riskrelay.intake` / `riskrelay-intake`: run the intake service."""

from __future__ import annotations

from riskrelay.intake.app import create_app
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.app import serve
from riskrelay.shared.settings import load_settings


def main() -> None:
    settings = load_settings(IntakeSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
