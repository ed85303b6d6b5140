"""`riskrelay dev up`'s console users and identity key: one user per person role, kept."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from riskrelay.cli.stack import (
    StackConfig,
    ensure_console_users,
    ensure_identity_keys,
    service_environment,
)
from riskrelay.reporting.people import UserFields
from riskrelay.shared.auth import PERSON_ROLES, IdentityTokens
from riskrelay.shared.settings import AuthSettings


def test_one_user_per_person_role_with_a_private_generated_password(tmp_path: Path) -> None:
    path = tmp_path / "console-users.json"
    users = ensure_console_users(path)
    assert [user["roles"] for user in users] == [[role.value] for role in PERSON_ROLES]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for user in users:
        UserFields.model_validate({k: user[k] for k in ("name", "roles", "password")})
    assert len({user["password"] for user in users}) == len(users)
    assert ensure_console_users(path) == users  # kept across runs
    assert json.loads(path.read_text())["users"] == users


def test_identity_keys_are_generated_once_and_valid(tmp_path: Path) -> None:
    path = tmp_path / "identity-keys.json"
    ensure_identity_keys(path)
    first = path.read_text()
    ensure_identity_keys(path)
    assert path.read_text() == first
    tokens = IdentityTokens.from_settings(AuthSettings(identity_keys_file=path))
    assert tokens is not None
    assert tokens.can_sign


def test_every_service_verifies_person_tokens_and_reporting_knows_the_escalator(
    tmp_path: Path,
) -> None:
    config = StackConfig(data_dir=tmp_path)
    for name in ("intake", "escalator", "reporting"):
        env = service_environment(config, name, "postgresql://x@y/z")
        prefix = f"RISKRELAY_{name.upper()}_"
        assert env[f"{prefix}AUTH__IDENTITY_KEYS_FILE"] == str(config.identity_keys_file.resolve())
    reporting = service_environment(config, "reporting", "postgresql://x@y/z")
    assert reporting["RISKRELAY_REPORTING_CONSOLE__ESCALATOR_URL"] == "http://127.0.0.1:8003"
