"""runs, logs, cancel, status (filled in with the runs module)."""

import typer


def register(app: typer.Typer) -> None:
    pass
