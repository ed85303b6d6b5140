"""Every environment variable the operations and security docs name exists in the code."""

from __future__ import annotations

import re
from types import ModuleType

import pytest

from riskrelay import devstack
from riskrelay.contracts import SERVICES
from riskrelay.shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

DOCS = ("docs/operations.md", "docs/security.md")
PREFIXED = re.compile(r"\bRISKRELAY_([A-Z]+)_([A-Z0-9_]*[A-Z0-9])\b")
UNPREFIXED = re.compile(r"(?<![A-Z_])((?:KAFKA|DATABASE|HTTP|AUTH)__[A-Z0-9_]*[A-Z0-9])\b")
CLI_VARIABLES = ("RISKRELAY_KAFKA_BOOTSTRAP", "RISKRELAY_TOPIC_PREFIX")
# Read by the test fixtures and the dev stack (riskrelay.devstack), not by a service.
DEVSTACK_VARIABLES = (
    devstack.KAFKA_ENV,
    devstack.DATABASE_ENV,
    devstack.BROKER_ENV,
    devstack.KAFKA_CACHE_ENV,
)


@pytest.mark.parametrize("doc", DOCS)
def test_every_documented_variable_exists(kit: ModuleType, doc: str) -> None:
    text = (kit.ROOT / doc).read_text()
    cli = (kit.ROOT / "src" / "riskrelay" / "cli" / "main.py").read_text()
    initializer = kit.load_module(kit.DEPLOY / "docker" / "ensure_topics.py")
    unknown = []
    for match in PREFIXED.finditer(text):
        owner, suffix = match.groups()
        variable = match.group(0)
        if variable in CLI_VARIABLES:
            ok = f'envvar="{variable}"' in cli
        elif variable in DEVSTACK_VARIABLES:
            ok = True
        elif owner.lower() in SERVICES:
            cls = kit.settings_class(owner.lower())
            ok = suffix == "SECRETS_DIR" or kit.setting_field(cls, suffix) is not None
            # A file named after a whole settings group (JSON) is a valid secret name too.
        elif owner == "TOPICS":
            ok = kit.setting_field(initializer.TopicInitSettings, suffix) is not None
        else:
            ok = False
        if not ok:
            unknown.append(variable)
    for match in UNPREFIXED.finditer(text):
        if kit.setting_field(ServiceSettings, match.group(1)) is None:
            unknown.append(match.group(1))
    assert not unknown, f"{doc} names variables no settings class has: {sorted(set(unknown))}"


def test_the_check_catches_a_made_up_variable(kit: ModuleType) -> None:
    cls = kit.settings_class("intake")
    assert kit.setting_field(cls, "KAFKA__SASL_PASSWORD") is not None
    assert kit.setting_field(cls, "KAFKA__SASL_PASSWD") is None
    assert kit.setting_field(cls, "DATABASE__URL__X") is None
