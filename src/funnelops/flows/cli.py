"""The program a workflow template runs: `python -m funnelops.flows --granularity=DAY ...`.

Exit codes: 0 ok, 1 a flow failed (the message names the missing or unreadable file), 2 bad
arguments or an invalid project. Each flow prints one line (read / kept / quarantined, seconds);
with $FUNNELOPS_METRICS_FILE set, the run's metrics are also written there as JSON:
`{"flows": [{"layer", "flow", "read", "kept", "quarantined", "seconds", "rules"}], "period",
"period_end", "granularity", "execution_type", "ok", "error"}`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import traceback
from pathlib import Path

from funnelops.errors import EXIT_FAILURE, EXIT_OK, FunnelopsError, UsageError
from funnelops.flows.args import parse_args, resolve_period
from funnelops.flows.context import RunContext, write_metrics


def _guard(ctx: RunContext):
    """The workflow's overlap guard around the whole run: the same lease as the runner and the scheduler."""
    from funnelops.backends.local.guard import workflow_lease

    return workflow_lease(ctx.home)


def _fail(message: str, hint: str | None = None) -> None:
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)


def build_context(argv: list[str]) -> tuple[RunContext, list[str], list[str]]:
    """Parse arguments, load the project and select the flows; raises FunnelopsError."""
    from funnelops.flows import registry
    from funnelops.spec.loader import load_project

    args = parse_args(argv)
    project = args.project or os.environ.get("FUNNELOPS_PROJECT")
    if not project:
        raise UsageError("no project file", "pass --project=PATH or set FUNNELOPS_PROJECT")
    home = Path(args.home or os.environ.get("FUNNELOPS_HOME") or ".funnelops").resolve()
    from funnelops.backends.local.home_perms import private_home

    private_home(home)  # a run started by hand writes private files too (0700 / 0600)
    loaded = load_project(project)
    period = resolve_period(args.granularity, args.period, loaded.spec.project.time_zone)
    trusted = registry.select(args.trusted_flows, registry.trusted_names(loaded.base_dir), "trusted")
    refined = registry.select(args.refined_flows, registry.refined_names(loaded.base_dir), "refined")
    ctx = RunContext(loaded=loaded, home=home, granularity=args.granularity,
                     execution_type=args.execution_type, period=period, env=args.env)
    return ctx, trusted, refined


def run(ctx: RunContext, trusted: list[str], refined: list[str]) -> None:
    from funnelops.flows.runtime import backend, layer_runners

    run_trusted, run_refined = layer_runners()
    what = "all periods" if ctx.full else f"{ctx.period.start} .. {ctx.period.end} (exclusive)"
    where = "" if backend() == "local" else f" backend={backend()}"
    print(f"flows: granularity={ctx.granularity} execution_type={ctx.execution_type} period={what}{where}",
          flush=True)
    if backend() == "local":  # a swap cut short by kill -9 is settled before anything reads or writes
        from funnelops.flows.partitions import recover_swaps

        for part in recover_swaps(ctx.tmp_root):
            print(f"flows: put back partition {part} (a swap was cut short)", flush=True)
    ctx.results.extend(run_trusted(ctx, trusted))
    ctx.results.extend(run_refined(ctx, refined))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ctx = None
    try:
        ctx, trusted, refined = build_context(argv)
        with _guard(ctx):
            run(ctx, trusted, refined)
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
