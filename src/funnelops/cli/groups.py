"""The command groups, shared by the modules that add commands to them."""

import typer

job_app = typer.Typer(help="The seed's jobs, one at a time (what each pipeline stage runs).", no_args_is_help=True)
pipeline_app = typer.Typer(help="The seed's two pipelines: `funnel` (IaC, Initial data) and `workflow`.",
                           no_args_is_help=True)
spec_app = typer.Typer(help="The project definition's format.", no_args_is_help=True)
scheduler_app = typer.Typer(help="Schedulers: list, pause, resume, force, and the local daemon.", no_args_is_help=True)
