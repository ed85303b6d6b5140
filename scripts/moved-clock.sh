#!/usr/bin/env bash
# Run a command with the wall clock moved, for it and for every process it starts: the services
# of the e2e tests, the embedded PostgreSQL (its now()), the browser. Tests must pass on any date;
# running them with the clock a year ahead finds the ones that mix fixed event times with it.
#
# Usage: scripts/moved-clock.sh WHEN COMMAND [ARG...]
#   WHEN is anything `date -d` reads: "+1 year", "2027-01-01 00:30", "2028-02-29 12:00 UTC".
#
# How: libfaketime, preloaded, shifts CLOCK_REALTIME by a fixed offset. An offset (not a start
# time) keeps every process in agreement to the second, and the monotonic clock is left alone so
# timeouts and asyncio behave. The library is the one the `libfaketime` test dependency ships
# (installed by `make setup` with the rest of the workspace): Debian's faketime 0.9.10 passes a
# negative deadline to clock_nanosleep when the monotonic clock is left alone, so Python 3.11's
# time.sleep fails with EINVAL, and faking the monotonic clock instead hangs timed lock waits.
#
# The browser of the dashboard tests runs with its monotonic clock moved as well (see below).
# Not moved: the embedded broker (tansu is a static binary, so nothing can be preloaded into it).
# Its clock is only used for its own protocol timers; record timestamps come from the producers,
# which are moved (tests/integration/test_clocks.py checks both). Servers given through
# RISKRELAY_TEST_* or run by testcontainers are not moved either; that test fails on them.
# Exit status: the command's, or 2 when the clock could not be moved.
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 WHEN COMMAND [ARG...]   (WHEN as date -d reads it, e.g. '+1 year')" >&2
    exit 2
fi
when="$1"
shift

if ! target="$(date -u -d "$when" +%s)"; then
    echo "moved-clock: cannot read the date '$when'" >&2
    exit 2
fi

if ! library="$(python -c 'import libfaketime, pathlib; print(pathlib.Path(libfaketime.__file__).parent / "vendor/libfaketime/src/libfaketime.so.1")')" \
    || [[ ! -f "$library" ]]; then
    echo "moved-clock: libfaketime.so.1 not found; the libfaketime test dependency is missing (make setup)" >&2
    exit 2
fi

# The embedded PostgreSQL runs as another user when the tests run as root, and the checkout may
# sit in a folder only its owner can enter: preload a copy every user can read.
copy_dir="$(mktemp -d "${TMPDIR:-/tmp}/riskrelay-faketime.XXXXXX")"
trap 'rm -rf "$copy_dir"' EXIT
chmod 755 "$copy_dir"
install -m 0644 "$library" "$copy_dir/libfaketime.so.1"

# Chromium hangs when only the real-time clock is moved and works when the monotonic one moves
# too; the browser tests take it from RISKRELAY_CHROMIUM, so it gets both.
if browser="$(command -v "${RISKRELAY_CHROMIUM:-chromium}")"; then
    printf '#!/bin/sh\nFAKETIME_DONT_FAKE_MONOTONIC=0 exec "%s" "$@"\n' "$browser" >"$copy_dir/chromium"
    chmod 755 "$copy_dir/chromium"
    export RISKRELAY_CHROMIUM="$copy_dir/chromium"
fi

offset=$((target - $(date -u +%s)))
FAKETIME="$(printf '%+d' "$offset")"
export FAKETIME
export FAKETIME_DONT_FAKE_MONOTONIC=1
export LD_PRELOAD="$copy_dir/libfaketime.so.1${LD_PRELOAD:+:$LD_PRELOAD}"

# A preload that does not load is only a warning of the dynamic loader: check the clock moved.
seen="$(python -c 'import time; print(int(time.time()))')"
if ((seen - target > 60 || target - seen > 60)); then
    echo "moved-clock: the clock did not move (wanted $(date -u -d "@$target" -Is), got $(date -u -d "@$seen" -Is))" >&2
    exit 2
fi
echo "moved-clock: running with the clock at $(date -u -d "@$seen" '+%Y-%m-%d %H:%M:%S UTC') (offset ${FAKETIME}s): $*"

status=0
"$@" || status=$?
exit "$status"
