"""The demo: the whole seed lifecycle on the embedded backend, from an empty directory.

Copies the example Funnel project into the directory, generates raw data, runs IaC, Initial
data and forces Día (waiting for it), then reads the refined funnel back for a summary.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import funnelops

if TYPE_CHECKING:
    from funnelops.backends.base import Backend


def example_project_dir() -> Path:
    """The shipped Funnel project: packaged with the wheel, or the repo's projects/funnel."""
    pkg = Path(funnelops.__file__).resolve().parent
    candidates = [pkg / "_example" / "funnel"] + [p / "projects" / "funnel" for p in pkg.parents]
    for c in candidates:
        if (c / "funnel.yaml").is_file():
            return c
    from funnelops.errors import UsageError

    raise UsageError("the example Funnel project is not installed with this copy of funnelops",
                     "pass --project to a funnel.yaml of your own")


def prepare_demo_dir(target: Path) -> Path:
    """Copy the example project into `target/project` (kept if already there); returns funnel.yaml."""
    dest = target / "project"
    if not (dest / "funnel.yaml").is_file():
        shutil.copytree(example_project_dir(), dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest / "funnel.yaml"


def funnel_summary(backend: Backend) -> dict[str, Any]:
    """Stage volumes and stage-to-stage conversion over all refined years, plus attainment status.

    Read through the backend's read-only query (BigQuery SQL), so it works on either backend."""
    stages = backend.read_query(
        "SELECT stage, MIN(stage_order) AS o, SUM(volume) AS v, SUM(amount_cop) AS a "
        "FROM funnel_refined.funnel_yearly GROUP BY stage ORDER BY o")
    channels = backend.read_query(
        "SELECT channel, SUM(leads) AS leads, SUM(won) AS won FROM funnel_reporting.v_conversion_by_channel "
        "GROUP BY channel ORDER BY channel")
    status = dict(backend.read_query("SELECT status, COUNT(*) FROM funnel_reporting.v_attainment_monthly "
                                     "GROUP BY status"))
    out_stages = []
    prev = None
    for stage, order, volume, amount in stages:
        volume = int(volume or 0)
        out_stages.append({"stage": stage, "order": int(order), "volume": volume,
                           "amount_cop": float(amount or 0),
                           "conversion_from_previous": (volume / prev) if prev else None})
        prev = volume or None
    return {"stages": out_stages,
            "channels": [{"channel": c, "leads": int(n or 0), "won": int(w or 0),
                          "lead_to_won": (int(w or 0) / int(n)) if n else None} for c, n, w in channels],
            "attainment_status": {k: int(v) for k, v in status.items()}}
