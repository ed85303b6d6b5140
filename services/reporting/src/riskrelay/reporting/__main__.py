"""`python -m riskrelay.reporting` / `riskrelay-reporting`: run the reporting service."""

from __future__ import annotations

from riskrelay.reporting.app import create_app
from riskrelay.reporting.settings import ReportingSettings
from riskrelay.shared.app import run_service


def main() -> None:
    run_service(create_app, ReportingSettings)


if __name__ == "__main__":
    main()
