"""Which runtime runs the layers: the one place that chooses between the local and gcp paths.

`FUNNELOPS_BACKEND` (default `local`) picks the path, the way the gcp launcher on Dataproc sets
it (`gcp`, with `FUNNELOPS_ENGINE=spark`):

- local: trusted flows on SQLFrame over DuckDB reading `<home>/buckets/...`; refined SQL
  transpiled and run on the DuckDB warehouse file.
- gcp: trusted flows on Spark reading `gs://<raw bucket>` and writing `gs://<trusted bucket>`
  partitions; refined SQL run as written on BigQuery.

The trusted flow code is the same on both; only the runtime around it changes.
"""

from __future__ import annotations

import os
from typing import Callable

from funnelops.errors import UsageError

BACKENDS = ("local", "gcp")


def backend() -> str:
    name = (os.environ.get("FUNNELOPS_BACKEND") or "local").strip().lower()
    if name not in BACKENDS:
        raise UsageError(f"FUNNELOPS_BACKEND={name} is not valid", f"use one of: {', '.join(BACKENDS)}")
    if name == "gcp":
        engine = (os.environ.get("FUNNELOPS_ENGINE") or "spark").strip().lower()
        if engine != "spark":
            raise UsageError(f"FUNNELOPS_ENGINE={engine} cannot run the gcp path",
                             "the gcp path reads gs:// with Spark: set FUNNELOPS_ENGINE=spark or unset it")
    return name


def layer_runners() -> tuple[Callable, Callable]:
    """(run_trusted, run_refined) of the selected backend; each takes (ctx, flow names)."""
    if backend() == "gcp":
        from funnelops.flows.bigquery_refined import run_refined
        from funnelops.flows.spark_trusted import run_trusted
    else:
        from funnelops.flows.refined import run_refined
        from funnelops.flows.trusted import run_trusted
    return run_trusted, run_refined
