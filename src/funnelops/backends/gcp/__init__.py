"""The gcp backend: GCS, BigQuery, Dataproc workflow templates and Cloud Scheduler.

Importing this package needs the ``gcp`` extra; without it, :class:`MissingExtra` says how to
install it (the core never imports this package, so a slim install never pays for it). The
Google clients themselves are imported only when a backend first talks to Google.

Modules: :mod:`.clients` (endpoints, credentials), :mod:`.retry` (one retry policy, errors that
name the resource), :mod:`.storage` (objects, buckets), :mod:`.bigquery`, :mod:`.dataproc`,
:mod:`.scheduler`, :mod:`.artifacts`, :mod:`.ledger`, :mod:`.leases`, :mod:`.runtime`,
:mod:`.backend`.
"""

from __future__ import annotations

import importlib.util

from funnelops.errors import MissingExtra

_NEEDED = ("google.cloud.storage", "google.cloud.bigquery", "google.cloud.dataproc_v1", "google.cloud.scheduler_v1")


def _missing() -> list[str]:
    out = []
    for mod in _NEEDED:
        try:
            found = importlib.util.find_spec(mod) is not None
        except (ModuleNotFoundError, ValueError):  # a parent package is absent, or blocked
            found = False
        if not found:
            out.append(mod)
    return out


_absent = _missing()
if _absent:
    raise MissingExtra(f"the gcp backend needs {', '.join(_absent)} (not installed)",
                       "pip install 'funnelops[gcp]'")

from funnelops.backends.gcp.backend import GcpBackend  # noqa: E402

__all__ = ["GcpBackend"]
