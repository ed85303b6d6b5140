"""`python -m riskrelay.register` / `riskrelay-register`: run the register service."""

from __future__ import annotations

from riskrelay.register.app import create_app
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.app import serve
from riskrelay.shared.settings import load_settings


def main() -> None:
    settings = load_settings(RegisterSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
