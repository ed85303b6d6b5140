"""`python -m riskrelay.classifier` / `riskrelay-classifier`: run the classifier service."""

from __future__ import annotations

from riskrelay.classifier.app import create_app
from riskrelay.classifier.settings import ClassifierSettings
from riskrelay.shared.app import run_service


def main() -> None:
    run_service(create_app, ClassifierSettings)


if __name__ == "__main__":
    main()
