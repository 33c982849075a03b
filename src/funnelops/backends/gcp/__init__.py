"""The gcp backend: GCS, BigQuery, Dataproc workflow templates and Cloud Scheduler.

Importing the backend (``from funnelops.backends.gcp import GcpBackend``) needs the ``gcp`` extra;
without it, :class:`MissingExtra` says how to install it (the core never imports this package, so a
slim install never pays for it). The package itself imports nothing eagerly: the flows program on a
Dataproc cluster imports :mod:`.flows_runtime`, :mod:`.clients` and :mod:`.leases` with only the
storage and BigQuery clients installed (the cluster's wheelhouse), and must not be refused for
lacking the Dataproc and Scheduler clients it never uses. The Google clients themselves are
imported only when a backend first talks to Google.

Modules: :mod:`.clients` (endpoints, credentials), :mod:`.retry` (one retry policy, errors that
name the resource), :mod:`.storage` (objects, buckets), :mod:`.bigquery`, :mod:`.dataproc`,
:mod:`.scheduler`, :mod:`.artifacts`, :mod:`.ledger`, :mod:`.leases`, :mod:`.runtime`,
:mod:`.backend`.
"""

from __future__ import annotations

import importlib.util
from typing import Any

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


def __getattr__(name: str) -> Any:
    """``GcpBackend`` on first use (PEP 562), after checking the whole extra is installed."""
    if name != "GcpBackend":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    absent = _missing()
    if absent:
        raise MissingExtra(f"the gcp backend needs {', '.join(absent)} (not installed)",
                           "pip install 'funnelops[gcp]'")
    from funnelops.backends.gcp.backend import GcpBackend

    return GcpBackend


__all__ = ["GcpBackend"]
