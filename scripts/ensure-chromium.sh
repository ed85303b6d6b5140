#!/usr/bin/env bash
# Make sure Debian's headless-capable Chromium is installed (the dashboard browser test needs it).
# Idempotent and non-interactive: does nothing when a chromium binary is already on PATH; otherwise
# installs Debian's `chromium` package with apt-get, through sudo only when not running as root.
# Exit status: 0 when chromium is available afterwards, 1 when it could not be installed.
set -euo pipefail

find_chromium() {
    local candidate
    for candidate in "${RISKRELAY_CHROMIUM:-}" chromium chromium-browser /usr/bin/chromium; do
        if [[ -n "$candidate" ]] && command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

if found="$(find_chromium)"; then
    echo "chromium: $found"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing and apt-get is not available: install Chromium and set RISKRELAY_CHROMIUM" >&2
    exit 1
fi

as_root=()
if [[ "$(id -u)" != "0" ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "chromium is missing; run as root or install sudo to let this script apt-get install it" >&2
        exit 1
    fi
    as_root=(sudo -n)
fi

echo "installing Debian's chromium package…"
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

if found="$(find_chromium)"; then
    echo "chromium: $found"
    exit 0
fi
echo "chromium is still missing after apt-get install" >&2
exit 1
