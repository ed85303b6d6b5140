"""`python -m riskrelay.register` / `riskrelay-register`: run the register service."""

from __future__ import annotations

from riskrelay.register.app import create_app
from riskrelay.register.settings import RegisterSettings
from riskrelay.shared.app import run_service


def main() -> None:
    run_service(create_app, RegisterSettings)


if __name__ == "__main__":
    main()
