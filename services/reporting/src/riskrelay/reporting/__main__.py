"""`python -m riskrelay.reporting` / `riskrelay-reporting`: run the reporting service."""

from __future__ import annotations

from riskrelay.reporting.app import create_app
from riskrelay.reporting.settings import ReportingSettings
from riskrelay.shared.app import serve
from riskrelay.shared.settings import load_settings


def main() -> None:
    settings = load_settings(ReportingSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
