"""A configuration file that does not validate stops a service with exit code 2 and the reason."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from riskrelay.shared.app import run_service
from riskrelay.shared.settings import ServiceSettings

pytestmark = pytest.mark.unit


def test_a_bad_configuration_file_exits_2_naming_the_problem(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def create_app(settings: ServiceSettings) -> FastAPI:
        raise ValueError("rules.yaml: rule 'broken': unbalanced parenthesis")

    with pytest.raises(SystemExit) as stopped:
        run_service(create_app, ServiceSettings)
    assert stopped.value.code == 2
    assert "rule 'broken': unbalanced parenthesis" in capsys.readouterr().err
