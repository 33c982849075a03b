"""The program a workflow template runs: `python -m funnelops.flows --granularity=DAY ...`.

Exit codes: 0 ok, 1 a flow failed (the message names the missing or unreadable file), 2 bad
arguments or an invalid project. Each flow prints one line (read / kept / quarantined, seconds);
with $FUNNELOPS_METRICS_FILE set, the run's metrics are also written there as JSON:
`{"flows": [{"layer", "flow", "read", "kept", "quarantined", "seconds", "rules"}], "period",
"period_end", "granularity", "execution_type", "ok", "error"}`.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from funnelops.errors import EXIT_FAILURE, EXIT_OK, FunnelopsError, UsageError
from funnelops.flows.args import parse_args, resolve_period
from funnelops.flows.context import RunContext, write_metrics
from funnelops.flows.engines.base import FlowsRuntime, RunSkipped


def _fail(message: str, hint: str | None = None) -> None:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def build_context(argv: list[str]) -> tuple[RunContext, list[str], list[str], Path]:
    """Parse arguments, load the project and select the flows; returns the run's context, the
    trusted and refined flows and the home folder. Raises FunnelopsError."""
    from funnelops.flows import registry
    from funnelops.spec.loader import load_project

    args = parse_args(argv)
    project = args.project or os.environ.get("FUNNELOPS_PROJECT")
    if not project:
        raise UsageError("no project file", "pass --project=PATH or set FUNNELOPS_PROJECT")
    home = Path(args.home or os.environ.get("FUNNELOPS_HOME") or ".funnelops").resolve()
    # the environment the run was started in (the local runtime passes it on; on Dataproc the
    # shipped project file is already the environment's resolved document)
    loaded = load_project(project, env=os.environ.get("FUNNELOPS_ENV") or None)
    period = resolve_period(args.granularity, args.period, loaded.spec.project.time_zone)
    trusted = registry.select(args.trusted_flows, registry.trusted_names(loaded.base_dir), "trusted")
    refined = registry.select(args.refined_flows, registry.refined_names(loaded.base_dir), "refined")
    ctx = RunContext(loaded=loaded, granularity=args.granularity, execution_type=args.execution_type,
                     period=period, env=args.env, lease=args.lease, workflow=args.workflow)
    return ctx, trusted, refined, home


def open_runtime(ctx: RunContext, home: Path) -> FlowsRuntime:
    """The runtime of the backend FUNNELOPS_BACKEND names (default `local`; the gcp launcher on
    Dataproc sets `gcp`): its engines, its overlap guard."""
    from funnelops.backends import FLOWS_BACKENDS, flows_runtime

    name = (os.environ.get("FUNNELOPS_BACKEND") or "local").strip().lower()
    if name not in FLOWS_BACKENDS:
        raise UsageError(f"FUNNELOPS_BACKEND={name} is not valid", f"use one of: {', '.join(FLOWS_BACKENDS)}")
    return flows_runtime(name, home=home, loaded=ctx.loaded, ctx=ctx)


def run(ctx: RunContext, runtime: FlowsRuntime, trusted: list[str], refined: list[str]) -> None:
    what = "all periods" if ctx.full else f"{ctx.period.start} .. {ctx.period.end} (exclusive)"
    print(f"flows: granularity={ctx.granularity} execution_type={ctx.execution_type} period={what}{runtime.label}",
          flush=True)
    for part in runtime.recover():  # a swap cut short by kill -9 is settled before anything reads or writes
        print(f"flows: put back partition {part} (a swap was cut short)", flush=True)
    if trusted:
        from funnelops.flows.trusted_runner import run_trusted

        with runtime.trusted(ctx) as engine:
            ctx.results.extend(run_trusted(ctx, trusted, engine, runtime.guard.verify))
    if refined:
        from funnelops.flows.refined_runner import run_refined

        with runtime.refined(ctx) as engine:
            ctx.results.extend(run_refined(ctx, refined, engine, runtime.guard.verify))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ctx = None
    try:
        ctx, trusted, refined, home = build_context(argv)
        runtime = open_runtime(ctx, home)
        with runtime.guard.hold():
            run(ctx, runtime, trusted, refined)
    except RunSkipped as skipped:  # another run of the workflow is in progress: not a failure
        print(skipped, flush=True)
        return EXIT_OK
    except FunnelopsError as exc:
        _fail(exc.message, exc.hint)
        if ctx is not None:
            write_metrics(ctx.metrics(ok=False, error=exc.message))
        return exc.exit_code
    except Exception as exc:  # a bug or an engine error: show it, but as a failed run
        traceback.print_exc()
        _fail(f"flows failed: {exc}")
        if ctx is not None:
            write_metrics(ctx.metrics(ok=False, error=str(exc)))
        return EXIT_FAILURE
    write_metrics(ctx.metrics())
    return EXIT_OK
