"""`funnelops demo`: the README's main command."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from funnelops.cli.context import AppContext, esc, get_ctx


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def _bar(fraction: float, width: int = 40) -> str:
    full = int(round(max(0.0, min(1.0, fraction)) * width))
    return "█" * full + "·" * (width - full)


def bar_width(console_width: int, fixed: int, most: int = 40, least: int = 10) -> int:
    """The bars' width: what the terminal leaves beside the `fixed` text of a line, within [least, most]."""
    return max(least, min(most, console_width - fixed))


def render_summary(app: AppContext, summary: dict) -> None:
    c = app.console
    width = c.out.width
    stage_bar = bar_width(width, 46)      # "  stage        " + bar + " 9,999,999  100.0% of previous"
    channel_bar = bar_width(width, 56, most=30)  # "  channel            " + bar + " 100.0%  (9,999 of 99,999)"
    stages = summary["stages"]
    top = max((s["volume"] for s in stages), default=0) or 1
    c.print("", "[bold]The refined funnel (all years)[/]")
    for s in stages:
        conv = s["conversion_from_previous"]
        conv_txt = f"{conv:6.1%} of previous" if conv is not None else " " * 18
        c.print(f"  {esc(str(s['stage']).ljust(12))} [cyan]{_bar(s['volume'] / top, stage_bar)}[/] {s['volume']:>9,}  {conv_txt}")
    if stages and stages[0]["volume"]:
        c.print(f"  lead -> won: [bold]{stages[-1]['volume'] / stages[0]['volume']:.1%}[/]")
    if summary["channels"]:
        c.print("", "[bold]Lead-to-won by channel[/]")
        best = max((ch["lead_to_won"] or 0 for ch in summary["channels"]), default=0) or 1
        for ch in summary["channels"]:
            rate = ch["lead_to_won"] or 0
            c.print(f"  {esc(str(ch['channel']).ljust(18))} [green]{_bar(rate / best, channel_bar)}[/] {rate:6.1%}  "
                    f"({ch['won']:,} of {ch['leads']:,})")
    st = summary["attainment_status"]
    if st:
        c.print("", "[bold]Monthly attainment vs targets[/]  "
                f"[green]{st.get('green', 0)} on target[/], [yellow]{st.get('yellow', 0)} close[/], "
                f"[red]{st.get('red', 0)} behind[/]")


def demo(
    ctx: typer.Context,
    directory: Path = typer.Option(Path("funnelops-demo"), "--dir", help="Where the demo's project and state go."),
    rows: int = typer.Option(100_000, "--rows", min=1000, help="Raw rows to generate."),
    seed: int = typer.Option(42, "--seed", help="Same seed, same data."),
) -> None:
    """Run the whole lifecycle on the local backend from an empty directory, then summarize the funnel."""
    from funnelops.cli.config import write_config
    from funnelops.cli.lifecycle_cmd import _summary
    from funnelops.cli.reporter import ConsoleReporter
    from funnelops.cli.data_cmd import run_generate
    from funnelops.lifecycle.demo import funnel_summary, prepare_demo_dir
    from funnelops.lifecycle.pipelines import run_funnel_pipeline, run_workflow_pipeline
    from funnelops.backends.types import default_actor

    app = get_ctx(ctx)
    directory = directory.expanduser().absolute()
    if app.dry_run:
        app.console.print(f"dry run: would copy the Funnel project into {esc(directory)}, generate {rows:,} rows, "
                          "run IaC, Initial data and force Día on the local backend")
        app.console.emit({"dry_run": True, "command": "demo", "dir": str(directory), "rows": rows})
        return
    t0 = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    app.project_path = prepare_demo_dir(directory)
    app.home = directory / ".funnelops"
    app.backend_name = "local"
    app.env = None  # the demo's project is the shipped Funnel, which declares no environments
    # so that `cd DIR && funnelops status` finds this project and home with no flags (cli/config.py)
    app.config_file = write_config(directory, "project/funnel.yaml", ".funnelops", "local")
    app.console.print(f"[bold]funnelops demo[/] in {esc(directory)}", f"  project: {esc(app.project_path)}",
                      f"  state:   {esc(app.home)}", "")
    app.console.print("[bold]▶ Generate raw data[/]")
    import contextlib
    import sys

    # the generator reports in plain text; with --json, stdout is kept for the one JSON document
    with contextlib.redirect_stdout(sys.stderr if app.as_json else sys.stdout):
        # the demo's home is its own: a re-run regenerates the data it wrote the first time
        run_generate(app.project_path, app.home, rows, None, None, seed, as_json=False, replace=True,
                     reporter=ConsoleReporter(app))
    loaded, backend, actor = app.project, app.backend, default_actor()
    reporter = ConsoleReporter(app)
    results = []
    for stage in ("IaC", "Initial data"):
        results.append(run_funnel_pipeline(loaded, backend, stage, actor=actor, reporter=reporter))
        _summary(app, results[-1])
    results.append(run_workflow_pipeline(loaded, backend, "Día", actor=actor, reporter=reporter, wait=True))
    _summary(app, results[-1])
    summary = funnel_summary(backend)
    render_summary(app, summary)
    took = time.perf_counter() - t0
    import shutil

    exe = "funnelops" if shutil.which("funnelops") else str(Path(sys.argv[0]).absolute())
    from funnelops.cli.where import print_where
    from funnelops.lifecycle.where import data_locations

    where = data_locations(loaded, backend)
    app.console.print("")
    print_where(app.console, where)
    app.console.print("", f"[bold green]Demo finished in {took:.1f}s.[/] Explore it:",
                      esc(f"  cd {directory} && {exe} status    (funnelops.toml there names the project and home)"),
                      "  ... runs | logs RUN | tables | query SQL | plan --stage workflow | scheduler list",
                      esc(f"  cd {directory} && {exe} ui        (the web dashboard at http://127.0.0.1:8400/; "
                          "Ctrl-C to stop)"))
    app.console.emit({"dir": str(directory), "seconds": round(took, 1), "pipelines": [r.to_dict() for r in results],
                      "funnel": summary, "where": where, "ui": f"cd {directory} && {exe} ui"})
