#!/usr/bin/env bash
# Make sure Apache Kafka can start for the tests (RISKRELAY_TEST_BROKER=kafka) and for
# `riskrelay dev up --broker kafka`: Java 17 or newer and Maven, then the broker's classpath
# resolved from Maven Central into Maven's local repository, with the list of jars cached
# (python -m riskrelay.devstack resolve-kafka), so no test downloads anything mid-run.
# Idempotent and non-interactive: installs Debian's openjdk-17-jre-headless and maven with apt-get
# (through sudo only when not running as root) only when java or mvn is missing.
# Run it inside the project's environment (`uv run bash scripts/ensure-kafka.sh`, as make does).
# Exit status: 0 when the classpath is resolved, 1 otherwise.
set -euo pipefail

java_ok() {
    local java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
    command -v "$java" >/dev/null 2>&1 || return 1
    local major
    major="$("$java" -version 2>&1 | sed -nE '1s/.*version "(1\.)?([0-9]+).*/\2/p')"
    [[ -n "$major" && "$major" -ge 17 ]]
}

missing=()
java_ok || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)

if ((${#missing[@]})); then
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "Apache Kafka needs Java 17+ and Maven (missing: ${missing[*]}) and apt-get is not available" >&2
        exit 1
    fi
    as_root=()
    if [[ "$(id -u)" != "0" ]]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "missing ${missing[*]}; run as root or install sudo to let this script apt-get install it" >&2
            exit 1
        fi
        as_root=(sudo -n)
    fi
    echo "installing Debian's ${missing[*]}…"
    # Wait for another apt/dpkg run (CI or a neighbour installing something) instead of failing.
    apt_get=(apt-get -o DPkg::Lock::Timeout=600 -qq)
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y --no-install-recommends "${missing[@]}"
fi

exec python -m riskrelay.devstack resolve-kafka
