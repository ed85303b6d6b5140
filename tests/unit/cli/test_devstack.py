"""The test and development brokers: which one is chosen, how Apache Kafka is resolved, set up
and reported when it cannot start (a stand-in ``java`` plays the JVM; no broker runs here)."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from riskrelay.devstack import (
    KAFKA_ARTIFACTS,
    KAFKA_CACHE_ENV,
    KAFKA_TEST_CONFIG,
    ApacheKafkaBroker,
    EmbeddedBroker,
    KafkaUnavailable,
    broker_kind,
    choose_broker,
    free_port,
    java_major_version,
    kafka_pom,
    new_broker,
    random_cluster_id,
    resolve_kafka,
)

pytestmark = pytest.mark.unit

POM = "{http://maven.apache.org/POM/4.0.0}"


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "25" 2025-09-16', 25),
        ('java version "1.8.0_392"', 8),
        ("no version here", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


@pytest.mark.parametrize(
    ("environ", "docker", "expected"),
    [
        ({}, False, ("embedded", "tansu")),
        ({"RISKRELAY_TEST_BROKER": "kafka"}, False, ("embedded", "kafka")),
        ({"RISKRELAY_TEST_BROKER": " Kafka "}, False, ("embedded", "kafka")),
        ({"RISKRELAY_TEST_BROKER": "tansu"}, False, ("embedded", "tansu")),
        # Docker's Apache Kafka only when no broker was asked for.
        ({}, True, ("testcontainers", "kafka")),
        ({"RISKRELAY_TEST_BROKER": "tansu"}, True, ("embedded", "tansu")),
        # An address from the environment is Apache Kafka unless said otherwise.
        ({"RISKRELAY_TEST_KAFKA": "k:9092"}, True, ("environment", "kafka")),
        (
            {"RISKRELAY_TEST_KAFKA": "k:9092", "RISKRELAY_TEST_BROKER": "tansu"},
            False,
            ("environment", "tansu"),
        ),
    ],
)
def test_broker_choice(environ: dict[str, str], docker: bool, expected: tuple[str, str]) -> None:
    assert choose_broker(environ, docker) == expected


def test_an_unknown_broker_name_is_refused() -> None:
    with pytest.raises(ValueError, match="RISKRELAY_TEST_BROKER='redpanda': expected one of"):
        broker_kind({"RISKRELAY_TEST_BROKER": "redpanda"})


def test_new_broker_of_each_kind(tmp_path: Path) -> None:
    assert isinstance(new_broker("tansu", 1, tmp_path / "b.log", tmp_path), EmbeddedBroker)
    kafka = new_broker("kafka", 1, tmp_path / "b.log", tmp_path / "data")
    assert isinstance(kafka, ApacheKafkaBroker)
    assert kafka.data_dir == tmp_path / "data"


def test_pom_asks_for_exactly_the_broker_artifacts() -> None:
    project = ElementTree.fromstring(kafka_pom())
    found = [
        ":".join(
            dependency.findtext(f"{POM}{part}") or ""
            for part in ("groupId", "artifactId", "version")
        )
        for dependency in project.iter(f"{POM}dependency")
    ]
    assert found == list(KAFKA_ARTIFACTS)
    assert "org.apache.kafka:kafka_2.13:4.4.0" in found


def test_cluster_id_is_a_kraft_uuid() -> None:
    cluster_id = random_cluster_id()
    assert len(cluster_id) == 22
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert cluster_id != random_cluster_id()


def test_server_properties_one_node_with_the_test_settings(tmp_path: Path) -> None:
    broker = ApacheKafkaBroker(9100, tmp_path / "broker.log", tmp_path, controller_port=9101)
    properties = broker.server_properties()
    assert properties["process.roles"] == "broker,controller"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:9100,CONTROLLER://127.0.0.1:9101"
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9100"
    assert properties["controller.quorum.voters"] == "1@127.0.0.1:9101"
    assert properties["log.dirs"] == str(broker.log_dir)
    for key, value in KAFKA_TEST_CONFIG.items():
        assert properties[key] == value
    assert properties["offsets.topic.replication.factor"] == "1"
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    changed = ApacheKafkaBroker(
        9100, tmp_path / "b.log", tmp_path, controller_port=9101, config={"num.partitions": "6"}
    )
    assert changed.server_properties()["num.partitions"] == "6"


def fake_java(folder: Path, broker_script: str) -> Path:
    """A ``java`` that reports version 17, formats storage like the StorageTool (it creates
    ``meta.properties`` in the log dir named by the properties file) and runs ``broker_script``
    in place of ``kafka.Kafka``."""
    home = folder / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1" == -version ]]; then echo \'openjdk version "17.0.9"\' >&2; exit 0; fi\n'
        'for arg; do last="$arg"; done\n'
        'if [[ " $* " == *" kafka.tools.StorageTool "* ]]; then\n'
        '  for ((i=1; i<=$#; i++)); do if [[ "${!i}" == --config ]]; then j=$((i+1)); config="${!j}"; fi; done\n'
        '  dir="$(sed -n "s/^log.dirs=//p" "$config")"; mkdir -p "$dir"; touch "$dir/meta.properties"; exit 0\n'
        "fi\n" + broker_script + "\n"
    )
    java.chmod(java.stat().st_mode | stat.S_IXUSR)
    return home


def cached_classpath(cache: Path) -> None:
    """A cache as a successful resolve leaves it."""
    cache.mkdir(parents=True)
    jar = cache / "kafka.jar"
    jar.write_bytes(b"")
    (cache / "pom.xml").write_text(kafka_pom())
    (cache / "classpath.txt").write_text(str(jar))


def broker_on_fake_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, broker_script: str
) -> ApacheKafkaBroker:
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, broker_script)))
    cached_classpath(tmp_path / "cache")
    monkeypatch.setenv(KAFKA_CACHE_ENV, str(tmp_path / "cache"))
    return ApacheKafkaBroker(free_port(), tmp_path / "broker.log", tmp_path / "data")


def test_a_broker_that_exits_at_start_raises_with_its_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_on_fake_java(
        tmp_path,
        monkeypatch,
        'echo "ERROR Exiting Kafka due to fatal exception: disk full"; exit 1',
    )

    with pytest.raises(RuntimeError, match="exited with code 1") as raised:
        broker.start(timeout=30)

    assert "Exiting Kafka due to fatal exception: disk full" in str(raised.value)
    assert (tmp_path / "data" / "kraft-combined-logs" / "meta.properties").exists()
    assert broker.process is None


def test_a_broker_that_never_answers_is_stopped_and_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_on_fake_java(
        tmp_path, monkeypatch, 'echo "INFO waiting for the controller quorum"; exec sleep 60'
    )

    with pytest.raises(TimeoutError, match="did not answer metadata requests") as raised:
        broker.start(timeout=1.5)

    assert "waiting for the controller quorum" in str(raised.value)
    assert broker.process is None


def test_resolving_without_maven_says_so(tmp_path: Path) -> None:
    home = fake_java(tmp_path, "exit 1")
    environ = {"JAVA_HOME": str(home), "PATH": str(tmp_path / "empty")}
    with pytest.raises(KafkaUnavailable, match="mvn not found"):
        resolve_kafka(tmp_path / "cache", environ)


def test_an_old_java_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "jdk8"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n")
    java.chmod(0o755)
    with pytest.raises(KafkaUnavailable, match="needs Java 17 or newer"):
        resolve_kafka(tmp_path / "cache", {"JAVA_HOME": str(home), "PATH": os.defpath})


def test_a_cached_classpath_is_used_while_its_jars_exist(tmp_path: Path) -> None:
    home = fake_java(tmp_path, "exit 1")
    cache = tmp_path / "cache"
    cached_classpath(cache)
    environ = {"JAVA_HOME": str(home), "PATH": str(tmp_path / "empty")}  # no mvn: must not be asked

    kafka = resolve_kafka(cache, environ)

    assert kafka.classpath == str(cache / "kafka.jar")
    assert kafka.java == str(home / "bin" / "java")
    assert "rootLogger.level" in kafka.log_config.read_text()
    (cache / "kafka.jar").unlink()
    with pytest.raises(KafkaUnavailable, match="mvn not found"):
        resolve_kafka(cache, environ)


PARENT_THAT_STARTS_A_BROKER = """
import time
from pathlib import Path
from riskrelay.devstack import BrokerProcess

class Sleeper(BrokerProcess):
    def start(self, timeout: float = 30.0) -> None:
        self._spawn(["sleep", "60"])

broker = Sleeper(1, Path({log!r}))
broker.start()
assert broker.process is not None
print(broker.process.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_a_broker_does_not_outlive_the_process_that_started_it(tmp_path: Path) -> None:
    code = PARENT_THAT_STARTS_A_BROKER.format(log=str(tmp_path / "broker.log"))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.kill()  # no clean-up runs
    parent.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and child_running(child):
        time.sleep(0.05)
    assert not child_running(child)


def child_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"
