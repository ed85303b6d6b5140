"""`python -m riskrelay.escalator` / `riskrelay-escalator`: run the escalator service."""

from __future__ import annotations

from riskrelay.escalator.app import create_app
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.shared.app import run_service


def main() -> None:
    run_service(create_app, EscalatorSettings)


if __name__ == "__main__":
    main()
