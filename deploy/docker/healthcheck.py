"""Container health check: GET /healthz on the port the service's own settings resolve to.

Runs as the image's HEALTHCHECK (``python /opt/riskrelay/healthcheck.py``). The service comes from
``RISKRELAY_SERVICE`` (set in the image); its settings class is read like the service reads it, so
``RISKRELAY_<SERVICE>_HTTP__PORT`` and ``__HOST`` overrides are honoured. Exit 0 when healthy.
"""

from __future__ import annotations

import importlib
import os
import sys
import urllib.request

WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


def health_url(service: str) -> str:
    """The /healthz URL of ``service`` as configured by its settings (environment included)."""
    module = importlib.import_module(f"riskrelay.{service}.settings")
    settings_class = getattr(module, f"{service.capitalize()}Settings")
    settings = settings_class()
    host = settings.http.host
    if host in WILDCARD_HOSTS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.http.port}/healthz"


def main() -> int:
    service = os.environ.get("RISKRELAY_SERVICE", "")
    if not service:
        sys.stderr.write("RISKRELAY_SERVICE is not set\n")
        return 2
    url = health_url(service)
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            healthy = response.status == 200
    except OSError as error:
        sys.stderr.write(f"{url}: {error}\n")
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
