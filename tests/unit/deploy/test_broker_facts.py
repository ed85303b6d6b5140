"""The broker facts the services rely on, in docker-compose.yml, the Kubernetes base and the
runbook, against what the Apache Kafka suite (``RISKRELAY_TEST_BROKER=kafka``) exercised: the
Kafka version and settings of its node (``riskrelay.devstack``), the topic registry the services
and the topic initializer create topics from (partitions, compaction of ``risk-registered``),
the replication factor topics are created with, and the consumer-group names.
``tests/integration/test_broker_semantics.py`` checks the same registry and group names on the
broker itself, and that compaction of ``risk-registered`` happens there."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest
import yaml

from riskrelay.contracts import SERVICES
from riskrelay.devstack import DEPLOYED_FETCH_MAX_WAIT_MS, KAFKA_TEST_CONFIG, KAFKA_VERSION
from riskrelay.shared import topics
from riskrelay.shared.topics import ALL_TOPICS, MAIN_TOPICS, RISK_REGISTERED

pytestmark = pytest.mark.unit

# Settings of a one-node cluster the compose stack and the test node must share: topics only
# from the registry, internal topics with one replica, a first group member assigned at once.
ONE_NODE_SETTINGS = (
    "auto.create.topics.enable",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "group.initial.rebalance.delay.ms",
)


def compose_broker_properties(compose: dict[str, Any]) -> dict[str, str]:
    """The apache/kafka image's settings: ``KAFKA_A_B`` is property ``a.b``."""
    environment = compose["services"]["kafka"]["environment"]
    return {
        name.removeprefix("KAFKA_").lower().replace("_", "."): str(value)
        for name, value in environment.items()
        if name.startswith("KAFKA_")
    }


def kubernetes_common_settings(kit: ModuleType) -> dict[str, str]:
    kustomization = yaml.safe_load((kit.K8S_BASE / "kustomization.yaml").read_text())
    common = next(g for g in kustomization["configMapGenerator"] if g["name"] == "riskrelay-common")
    return dict(literal.split("=", 1) for literal in common["literals"])


def test_compose_runs_the_kafka_version_the_suite_ran(compose: dict[str, Any]) -> None:
    image = compose["services"]["kafka"]["image"]
    assert image == f"apache/kafka:{KAFKA_VERSION}"


def test_compose_broker_settings_are_the_test_node_s(compose: dict[str, Any]) -> None:
    properties = compose_broker_properties(compose)
    for key in ONE_NODE_SETTINGS:
        assert properties.get(key) == KAFKA_TEST_CONFIG[key], key
    shared = set(properties) & set(KAFKA_TEST_CONFIG)
    assert {key: properties[key] for key in shared} == {
        key: KAFKA_TEST_CONFIG[key] for key in shared
    }
    assert properties["process.roles"] == "broker,controller"  # one combined node, as tested


def test_topics_are_created_only_from_the_registry_the_suite_used(
    compose: dict[str, Any], kit: ModuleType
) -> None:
    initializer = kit.load_module(kit.DEPLOY / "docker" / "ensure_topics.py")
    assert initializer.ALL_TOPICS is topics.ALL_TOPICS
    assert initializer.ensure_topics is topics.ensure_topics
    for service in SERVICES:
        prefix = kit.env_prefix(service)
        assert str(
            compose["services"][service]["environment"][f"{prefix}KAFKA__ENSURE_TOPICS"]
        ) == ("false"), f"compose: {service} must leave topic creation to the initializer"
    assert kubernetes_common_settings(kit)["KAFKA__ENSURE_TOPICS"] == "false"


def test_risk_registered_is_compacted_and_kept_for_good() -> None:
    config = RISK_REGISTERED.config()
    assert config["cleanup.policy"] == "compact"
    assert config["retention.ms"] == "-1"
    assert [t.name for t in ALL_TOPICS if "compact" in t.cleanup_policy] == ["risk-registered"]
    assert RISK_REGISTERED.dlq.cleanup_policy == "delete"  # dead letters are never compacted


def test_replication_factor_fits_each_cluster(compose: dict[str, Any], kit: ModuleType) -> None:
    """One replica on the one-node compose broker (as on the test node, whose internal topics
    have one too); three on a real cluster, where ``min.insync.replicas=2`` keeps acknowledged
    writes through the loss of a broker (see the runbook)."""
    topics_env = compose["services"]["topics"]["environment"]
    assert str(topics_env["RISKRELAY_TOPICS_KAFKA__REPLICATION_FACTOR"]) == "1"
    voters = compose_broker_properties(compose)["controller.quorum.voters"].split(",")
    assert len(voters) == 1
    assert KAFKA_TEST_CONFIG["default.replication.factor"] == "1"
    assert int(kubernetes_common_settings(kit)["KAFKA__REPLICATION_FACTOR"]) == 3


def test_partitions_and_consumer_groups_in_the_runbook_are_the_services(kit: ModuleType) -> None:
    """The runbook's table (service, topics consumed, consumer group) is what the services
    subscribe with; the KEDA triggers are held to the same groups in test_kubernetes."""
    runbook = (kit.ROOT / "docs" / "operations.md").read_text()
    assert f"Every topic has **{MAIN_TOPICS[0].partitions} partitions**" in runbook
    assert {spec.partitions for spec in ALL_TOPICS} == {MAIN_TOPICS[0].partitions}
    rows = {
        match.group(1): (re.findall(r"`([a-z.-]+)`", match.group(2)), match.group(3))
        for match in re.finditer(r"^\| (\w+) \| (.+) \| `([a-z.-]+)` \|$", runbook, re.MULTILINE)
        if match.group(1) in SERVICES
    }
    assert set(rows) == set(SERVICES)
    for service in SERVICES:
        consumed, group = rows[service]
        settings = kit.default_settings(service)
        assert group == settings.consumer_group, service
        if consumed:
            assert consumed == kit.consumed_topics(service), service


def test_fetch_wait_is_the_one_the_kafka_suite_ran_with(
    compose: dict[str, Any], kit: ModuleType
) -> None:
    """The deployments run Apache Kafka, which answers a fetch as soon as data arrives, so they
    wait up to DEPLOYED_FETCH_MAX_WAIT_MS (the value the Kafka suite runs every service with)
    instead of the code's short default, which is for tansu."""
    for service in SERVICES:
        variable = f"{kit.env_prefix(service)}KAFKA__FETCH_MAX_WAIT_MS"
        assert str(compose["services"][service]["environment"][variable]) == str(
            DEPLOYED_FETCH_MAX_WAIT_MS
        ), service
    assert kubernetes_common_settings(kit)["KAFKA__FETCH_MAX_WAIT_MS"] == str(
        DEPLOYED_FETCH_MAX_WAIT_MS
    )
