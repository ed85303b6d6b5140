"""`python -m riskrelay.intake` / `riskrelay-intake`: run the intake service."""

from __future__ import annotations

from riskrelay.intake.app import create_app
from riskrelay.intake.settings import IntakeSettings
from riskrelay.shared.app import run_service


def main() -> None:
    run_service(create_app, IntakeSettings)


if __name__ == "__main__":
    main()
