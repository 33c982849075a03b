"""What every command shares: global options, the loaded project, the backend, the console.

Loading is lazy so `--help` and usage errors never import the engines, and `--dry-run` never
opens a backend (no credentials needed, nothing created).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from funnelops.errors import UsageError

if TYPE_CHECKING:
    from funnelops.backends.base import Backend


def esc(value: Any) -> str:
    """A user-provided value (a name, an argument, a path) made safe to embed in rich markup.

    Console lines are rich markup; an unescaped `[/oops]` in a variable or a path made `status`
    crash with a MarkupError, and `[bold]` would restyle the output. Escape every value that did
    not come from funnelops' own literals.
    """
    from rich.markup import escape

    return escape(str(value))


class Console:
    """User output. With --json, stdout carries exactly one JSON document; people's text goes to stderr.

    `--no-color` (or NO_COLOR set to anything non-empty) means no ANSI escapes at all: rich's own
    `no_color` only drops colours and keeps bold/dim/underline escapes, so the console is built
    with `color_system=None` instead, which renders every style as plain text.
    """

    def __init__(self, as_json: bool, no_color: bool = False) -> None:
        from rich.console import Console as RichConsole

        self.as_json = as_json
        self.no_color = no_color or bool(os.environ.get("NO_COLOR"))
        plain: dict[str, Any] = {"color_system": None} if self.no_color else {}
        # Pipelines and pipes are not terminals: give tables room instead of rich's 80 columns,
        # unless COLUMNS says how wide the reader is (rich reads it when width is None).
        width = None if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit() else 140
        self.out = RichConsole(stderr=as_json, highlight=False, soft_wrap=True, width=width, **plain)
        self.err = RichConsole(stderr=True, highlight=False, soft_wrap=True, width=width, **plain)

    def print(self, *lines: str) -> None:
        for line in lines:
            self.out.print(line)

    def emit(self, data: Any) -> None:
        """The machine-readable result of a command (only with --json)."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
            sys.stdout.flush()

    def emit_line(self, data: Any) -> None:
        """One JSON line (only with --json): the commands that stream (`logs`, `scheduler serve`) print
        JSON lines, each a document of its own, and errors are one line too, so a JSON-lines reader
        parses them like any other line."""
        if self.as_json:
            sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()

    def error(self, message: str, hint: str | None = None) -> None:
        from rich.markup import escape

        self.err.print(f"[bold red]Error:[/] {escape(message)}", markup=True)
        if hint:
            self.err.print(f"[yellow]Hint:[/] {escape(hint)}")


class PlanHasChanges(Exception):
    """`plan --detailed-exitcode` found changes: exit 2. An exception of its own (not typer.Exit(2))
    so that `main()` tells it from click's usage errors, which also exit 2 and become 1 under the flag."""


@dataclass
class AppContext:
    project_path: Path
    home: Path
    backend_name: str | None = None
    as_json: bool = False
    debug: bool = False
    dry_run: bool = False
    reinit: bool = False
    # the funnelops.toml that set the project, home or backend (None: none did), and where each
    # of those three came from: "flag", "env", "default" or the config file's path (cli/config.py)
    config_file: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)
    no_color: bool = False
    # the environment (--env / FUNNELOPS_ENV / `env` in funnelops.toml; None: the project as written);
    # `home` is already its own home (cli/config.py env_home)
    env: str | None = None
    _loaded: Any = None
    _backend: Any = None
    _console: Console | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = Console(self.as_json, self.no_color)
        return self._console

    def set_json(self, flag: bool) -> None:
        if flag and not self.as_json:
            self.as_json = True
            self._console = None

    @property
    def project(self):
        if self._loaded is None:
            from funnelops.spec.loader import load_project

            if not self.project_path.exists():
                from funnelops.cli.config import Settings, missing_project_error

                raise missing_project_error(Settings(self.project_path, self.home, self.backend_name,
                                                     self.config_file, self.sources))
            self._loaded = load_project(self.project_path, backend=self.backend_name, env=self.env)
        return self._loaded

    @property
    def backend_kind(self) -> str:
        name = self.backend_name or self.project.spec.project.backend
        if name not in ("local", "gcp"):
            raise UsageError(f"unknown backend '{name}'", "use --backend local or --backend gcp")
        return name

    @property
    def backend(self) -> Backend:
        if self.dry_run:
            raise UsageError("internal: a dry run must not open the backend")
        if self._backend is None:
            from funnelops.backends import open_backend

            self._backend = open_backend(self.backend_kind, self.project, self.home, reinit=self.reinit)
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


def get_ctx(ctx) -> AppContext:
    """The AppContext stored by the root callback on the typer/click context."""
    obj = ctx.find_root().obj
    if not isinstance(obj, AppContext):
        raise UsageError("funnelops was not started through its command line")
    return obj
