"""`python -m riskrelay.escalator` / `riskrelay-escalator`: run the escalator service."""

from __future__ import annotations

import sys

from riskrelay.escalator.app import create_app
from riskrelay.escalator.calendar import ConfigFileError
from riskrelay.escalator.settings import EscalatorSettings
from riskrelay.shared.app import serve
from riskrelay.shared.settings import load_settings


def main() -> None:
    settings = load_settings(EscalatorSettings)
    try:
        app = create_app(settings)
    except ConfigFileError as error:
        # The message names the file and the field (e.g. `levels.5.timeframe.within: ...`).
        sys.stderr.write(f"invalid escalator configuration: {error}\n")
        raise SystemExit(2) from error
    serve(app, settings)


if __name__ == "__main__":
    main()
