from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from riskrelay.classifier.settings import ClassifierSettings
from riskrelay.devstack import choose_backend
from riskrelay.shared.auth import TokenRegistry
from riskrelay.shared.events import Role
from riskrelay.shared.migrations import MigrationError, validate_schema_name
from riskrelay.shared.settings import describe_settings_error, load_settings
from riskrelay.shared.topics import ALL_TOPICS, MAIN_TOPICS

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("environ", "docker", "expected"),
    [
        ({"RISKRELAY_TEST_KAFKA": "k:9092"}, True, "environment"),
        ({"RISKRELAY_TEST_KAFKA": "k:9092"}, False, "environment"),
        ({}, True, "testcontainers"),
        ({"RISKRELAY_TEST_KAFKA": ""}, True, "testcontainers"),
        ({}, False, "embedded"),
    ],
)
def test_backend_selection_order(environ: dict[str, str], docker: bool, expected: str) -> None:
    assert choose_backend("RISKRELAY_TEST_KAFKA", environ, docker) == expected


def test_every_topic_has_a_dead_letter_twin() -> None:
    names = {t.name for t in ALL_TOPICS}
    assert len(MAIN_TOPICS) == 7
    for topic in MAIN_TOPICS:
        assert topic.name + ".dlq" in names
    registered = next(t for t in MAIN_TOPICS if t.name == "risk-registered")
    assert registered.config()["cleanup.policy"] == "compact"


def test_invalid_setting_names_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKRELAY_CLASSIFIER_HTTP__PORT", "not-a-port")
    with pytest.raises(ValidationError) as error:
        ClassifierSettings()
    message = describe_settings_error(error.value, "RISKRELAY_CLASSIFIER_")
    assert "RISKRELAY_CLASSIFIER_HTTP__PORT" in message


def test_load_settings_exits_with_the_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RISKRELAY_CLASSIFIER_KAFKA__SECURITY_PROTOCOL", "TLS-ish")
    with pytest.raises(SystemExit) as exit_info:
        load_settings(ClassifierSettings)
    assert exit_info.value.code == 2
    assert "RISKRELAY_CLASSIFIER_KAFKA__SECURITY_PROTOCOL" in capsys.readouterr().err


def test_settings_read_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RISKRELAY_CLASSIFIER_KAFKA__BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("RISKRELAY_CLASSIFIER_DATABASE__URL", "postgresql://u@db/x")
    settings = ClassifierSettings()
    assert settings.kafka.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert settings.database.url.get_secret_value() == "postgresql://u@db/x"
    assert settings.http.port == 8002
    assert settings.consumer_group == "riskrelay-classifier"


def test_token_registry_roles_and_subjects(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(
        json.dumps(
            {
                "support_manager": "manager-token-1",
                "upstream": [
                    {"token": "zendesk-token-1", "subject": "zendesk-acme"},
                    "plain-upstream-1",
                ],
            }
        )
    )
    registry = TokenRegistry.from_file(path)
    manager = registry.lookup("manager-token-1")
    assert manager is not None
    assert manager.role is Role.SUPPORT_MANAGER
    zendesk = registry.lookup("zendesk-token-1")
    assert zendesk is not None
    assert zendesk.subject == "zendesk-acme"
    assert registry.lookup("nope-nope-nope") is None
    assert TokenRegistry.from_file(None).lookup("manager-token-1") is None


def test_token_file_with_unknown_role_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"janitor": "some-token-123"}))
    with pytest.raises(ValidationError, match="janitor"):
        TokenRegistry.from_file(path)


def test_schema_names_are_validated() -> None:
    assert validate_schema_name("register") == "register"
    with pytest.raises(MigrationError):
        validate_schema_name('x"; DROP TABLE')
