#!/usr/bin/env bash
# Make sure `promtool` is on PATH (the deploy tests run `promtool check config` on
# deploy/prometheus/prometheus.yml). Idempotent and non-interactive: does nothing when promtool is
# already there; otherwise installs Debian's `prometheus` package (which ships promtool) with
# apt-get, through sudo only when not running as root. The package's own service is not started:
# a policy-rc.d that denies start-up is in place for the install only.
# Exit status: 0 when promtool is available afterwards, 1 when it could not be installed.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
    echo "promtool: $(command -v promtool)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "promtool is missing and apt-get is not available: install Prometheus' promtool" >&2
    exit 1
fi

as_root=()
if [[ "$(id -u)" != "0" ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "promtool is missing; run as root or install sudo to let this script apt-get install it" >&2
        exit 1
    fi
    as_root=(sudo -n)
fi

# Debian's maintainer scripts ask invoke-rc.d before starting a daemon; exit code 101 means "no",
# so installing the package for its promtool never starts a Prometheus server on this machine.
policy=/usr/sbin/policy-rc.d
added_policy=false
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod 755 "$policy"
    added_policy=true
fi
remove_policy() {
    if [[ "$added_policy" == true ]]; then
        "${as_root[@]}" rm -f "$policy"
    fi
}
trap remove_policy EXIT

echo "installing Debian's prometheus package (for promtool)…"
# Wait for another apt/dpkg run (CI or a neighbour installing something) instead of failing.
apt_get=(apt-get -o DPkg::Lock::Timeout=600 -qq)
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y --no-install-recommends prometheus

if command -v promtool >/dev/null 2>&1; then
    echo "promtool: $(command -v promtool)"
    exit 0
fi
echo "promtool is still missing after apt-get install" >&2
exit 1
