"""What one run of the flows program knows: project, period, and what it measured.

Where the data lives (folders, URIs, a warehouse) is not here: the backend's flows runtime
(:class:`funnelops.flows.engines.base.FlowsRuntime`) gives each engine its locations.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from funnelops.errors import UsageError
from funnelops.flows.args import Period

if TYPE_CHECKING:
    from funnelops.spec.project import LoadedProject

FULL_START = "0001-01-01"
FULL_END = "9999-12-31"


@dataclass
class FlowResult:
    layer: str           # "trusted" | "refined"
    flow: str
    read: int = 0
    kept: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    rules: dict[str, int] = field(default_factory=dict)   # quarantined rows per rule
    skipped: str | None = None                             # why the flow did not run
    reused: bool = False                                   # full build already up to date
    out_of_period: int = 0                                 # snapshot rows of other periods, not read
    warnings: list[str] = field(default_factory=list)      # shown on the line; the run goes on

    def line(self) -> str:
        if self.skipped:
            return f"{self.layer:<8} {self.flow:<16} skipped: {self.skipped}"
        return (f"{self.layer:<8} {self.flow:<16} read={self.read} kept={self.kept} "
                f"quarantined={self.quarantined}" + (f" out_of_period={self.out_of_period}" if self.out_of_period else "")
                + f" {self.seconds:.2f}s" + (" (up to date, reused)" if self.reused else "")
                + "".join(f"  WARNING: {w}" for w in self.warnings))


@dataclass
class RunContext:
    """One run's selection: which project, granularity, execution type and period."""

    loaded: LoadedProject
    granularity: str
    execution_type: str
    period: Period                 # the selected period; `full` runs ignore it for selection
    env: str | None = None
    results: list[FlowResult] = field(default_factory=list)
    lease: str | None = None       # the run tail's --lease (gcp overlap guard); None outside gcp
    workflow: str | None = None    # the run tail's --workflow
    reported: list[FlowResult] = field(default_factory=list)  # flows ended so far (report_flow)

    @property
    def full(self) -> bool:
        return self.execution_type == "full"

    @property
    def project_dir(self) -> Path:
        return self.loaded.base_dir

    @property
    def time_zone(self) -> str:
        return self.loaded.spec.project.time_zone

    def bucket_name(self, role: str) -> str:
        """The name of the project's bucket with `role` (raw, trusted...)."""
        bucket = self.loaded.spec.bucket_for(role)
        if bucket is None:
            raise UsageError(f"the project has no bucket with role `{role}`", "add one to the project's buckets")
        return bucket.name

    def bounds(self) -> tuple[str, str]:
        if self.full:
            return FULL_START, FULL_END
        return self.period.start.isoformat(), self.period.end.isoformat()

    def metrics(self, ok: bool = True, error: str | None = None) -> dict:
        return {
            "flows": [{k: v for k, v in asdict(r).items() if v is not None} for r in self.results],
            "period": "all" if self.full else self.period.start.isoformat(),
            "period_end": None if self.full else self.period.end.isoformat(),
            "granularity": self.granularity,
            "execution_type": self.execution_type,
            "ok": ok,
            "error": error,
        }


def report_flow(ctx: RunContext, result: FlowResult) -> None:
    """A flow ended: rewrite the metrics file with every flow so far (`"partial": true`), so the
    supervisor can show rows per flow while the step still runs; the step's end writes the final one."""
    ctx.reported.append(result)
    done = [*ctx.results, *(r for r in ctx.reported if all(r is not x for x in ctx.results))]
    payload = ctx.metrics()
    payload["flows"] = [{k: v for k, v in asdict(r).items() if v is not None} for r in done]
    payload.update(ok=None, partial=True)
    try:
        write_metrics(payload)
    except OSError:  # progress is best effort: the final metrics are what counts
        pass


def write_metrics(payload: dict) -> None:
    """Write the run's metrics JSON to $FUNNELOPS_METRICS_FILE, if set (atomically: rename)."""
    target = os.environ.get("FUNNELOPS_METRICS_FILE")
    if not target:
        return
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)
