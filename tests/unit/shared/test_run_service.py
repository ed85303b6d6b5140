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


def test_services_off_the_alert_path_yield_the_cpu_by_default() -> None:
    from riskrelay.classifier.settings import ClassifierSettings
    from riskrelay.escalator.settings import EscalatorSettings
    from riskrelay.intake.settings import IntakeSettings
    from riskrelay.register.settings import RegisterSettings
    from riskrelay.reporting.settings import ReportingSettings

    on_path = [IntakeSettings(), ClassifierSettings(), EscalatorSettings()]
    off_path = [RegisterSettings(), ReportingSettings()]
    assert [s.cpu_nice for s in on_path] == [0, 0, 0]
    assert [s.cpu_nice for s in off_path] == [10, 10]


def test_cpu_nice_is_validated_and_applied_to_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import subprocess
    import sys

    from pydantic import ValidationError

    from riskrelay.register.settings import RegisterSettings

    monkeypatch.setenv("RISKRELAY_REGISTER_CPU_NICE", "20")
    with pytest.raises(ValidationError, match="cpu_nice"):
        RegisterSettings()
    # In a child process: niceness cannot be lowered again once raised.
    script = (
        "import os; from riskrelay.shared.app import lower_cpu_priority;"
        " before = os.nice(0); lower_cpu_priority(7); print(os.nice(0) - before)"
    )
    child = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == "7"
