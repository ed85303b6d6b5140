"""`python -m riskrelay.escalator` / `riskrelay-escalator`: run the escalator service."""

from __future__ import annotations

from riskrelay.escalator.app import create_app
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.shared.app import serve
from riskrelay.shared.settings import load_settings


def main() -> None:
    settings = load_settings(EscalatorSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
