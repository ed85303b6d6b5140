"""`python -m riskrelay.classifier` / `riskrelay-classifier`: run the classifier service."""

from __future__ import annotations

from riskrelay.classifier.app import create_app
from riskrelay.classifier.settings import ClassifierSettings
from riskrelay.shared.app import serve
from riskrelay.shared.settings import load_settings


def main() -> None:
    settings = load_settings(ClassifierSettings)
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
