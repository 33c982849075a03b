"""Where the data is: the warehouse, its datasets, the refined tables, the quarantine, one query.

`status` and the demo's footer print the same block (one function each side: this one gathers,
`cli/where.py` prints), so a new user learns where to look the moment the data exists. Nothing
here opens the warehouse: the answer comes from the project and the backend's addresses, so it
answers while a run writes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from funnelops.backends.base import Backend
    from funnelops.spec.project import LoadedProject

# Quarantined rows go to `<trusted bucket>/_quarantine/<flow>/` (funnelops.flows.trusted_runner.QUARANTINE;
# not imported: that module pulls in the flows' engines).
QUARANTINE = "_quarantine"


def refined_tables(loaded: LoadedProject) -> list[str]:
    """The tables the refined flows fill: those of datasets labelled `layer: refined`, else every table."""
    spec = loaded.spec
    refined = {d.id for d in spec.datasets if d.labels.get("layer") == "refined"}
    tables = [t.address for t in spec.tables]
    return [a for a in tables if a.split(".", 1)[0] in refined] or tables


def data_locations(loaded: LoadedProject, backend: Backend) -> dict[str, Any]:
    """{warehouse, datasets, refined_tables, quarantine, example_query} for `status` and the demo."""
    spec = loaded.spec
    trusted = spec.bucket_for("trusted")
    tables = refined_tables(loaded)
    first = tables[0] if tables else (spec.views[0].address if spec.views else None)
    return {"warehouse": backend.warehouse_location(), "datasets": [d.id for d in spec.datasets],
            "refined_tables": tables,
            "quarantine": backend.data_uri(trusted.name, QUARANTINE + "/") if trusted is not None else None,
            "example_query": f'funnelops query "SELECT * FROM {first} LIMIT 10"' if first else None}
