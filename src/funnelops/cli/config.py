"""The project-local config file, `funnelops.toml`: which project, home and backend a folder uses.

Why: after `make demo`, `funnelops status` in the demo folder read `./funnel.yaml` (absent there)
and an empty `./.funnelops`, and said "no runs yet" (issue 13). A folder can now name its project
once, as `terraform` or `dbt` find their project from the current directory:

    # funnelops.toml
    project = "project/funnel.yaml"   # relative paths resolve against this file's folder
    home = ".funnelops"
    backend = "local"
    env = "dev"                       # the environment (`environments:` in the project)

The file is looked for in the current directory, then in each parent (the nearest one wins).
Precedence, per setting: command-line flag > environment variable > funnelops.toml > default
(`./funnel.yaml`, `./.funnelops`, the project's own `backend`). A bad file is refused with its path,
the key and a hint (exit 2), never half-read.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funnelops.errors import UsageError, did_you_mean

CONFIG_NAME = "funnelops.toml"
KEYS = ("project", "home", "backend", "env")
BACKENDS = ("local", "gcp")
DEFAULT_PROJECT = Path("funnel.yaml")
DEFAULT_HOME = Path(".funnelops")


class ConfigError(UsageError):
    """funnelops.toml cannot be used: its path, the key (and line) at fault, and a hint."""

    kind = "invalid_config"


@dataclass(frozen=True)
class FileConfig:
    """What one funnelops.toml sets (paths already resolved against its folder)."""

    path: Path
    project: Path | None = None
    home: Path | None = None
    backend: str | None = None
    env: str | None = None


@dataclass(frozen=True)
class Settings:
    """The resolved project, home, backend and environment, with where each came from (flag, env, file,
    default). `home` is already the environment's own home (see `env_home`)."""

    project: Path
    home: Path
    backend: str | None
    config_file: Path | None
    sources: dict[str, str] = field(default_factory=dict)
    env: str | None = None


def env_home(home: Path, env: str | None) -> Path:
    """The home of environment `env`: `<home>/env/<env>`, whatever set `<home>` (flag, variable, file,
    default). Each environment has its own ledger, warehouse and run logs, so `--env prod` can never
    read or write dev's state by accident, even when one funnelops.toml or FUNNELOPS_HOME serves both."""
    return home / "env" / env if env else home


def find_config(start: Path) -> Path | None:
    """The nearest funnelops.toml in `start` or one of its parents (None: there is none)."""
    here = start.absolute()
    for folder in (here, *here.parents):
        candidate = folder / CONFIG_NAME
        if candidate.is_file():
            return candidate
    return None


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(key) and stripped[len(key):].lstrip().startswith("="):
            return number
    return None


def load_config(path: Path) -> FileConfig:
    """Parse and check one funnelops.toml; ConfigError (exit 2) names the file, the key and its line."""
    try:
        text = path.read_text(encoding="utf-8")
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}",
                          'write one `key = "value"` per line, e.g. project = "funnel.yaml"', file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read it: {exc}", "check the file's permissions and encoding (UTF-8)",
                          file=str(path)) from None
    problems: list[str] = []
    hints: list[str] = []

    def bad(key: str, message: str, hint: str) -> None:
        line = _line_of(text, key)
        problems.append(f"{path}{f':{line}' if line else ''}: {key}: {message}")
        hints.append(hint)

    for key in data:
        if key not in KEYS:
            close = did_you_mean(key, KEYS)
            bad(key, "unknown key", (close + " " if close else "") + f"the keys are {', '.join(KEYS)}")
    values: dict[str, Any] = {}
    for key in KEYS:
        value = data.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            bad(key, f"must be a non-empty string, not {value!r}", f'quote it: {key} = "..."')
        elif key == "backend" and value not in BACKENDS:
            bad(key, f"unknown backend '{value}'", 'use backend = "local" or backend = "gcp"')
        else:
            values[key] = value
    if problems:
        raise ConfigError("\n".join(problems) if len(problems) == 1 else
                          f"{path} has {len(problems)} problems:\n" + "\n".join("  " + p for p in problems),
                          "; ".join(dict.fromkeys(hints)), file=str(path))
    base = path.parent

    def resolved(key: str) -> Path | None:
        return (base / Path(values[key]).expanduser()) if key in values else None

    return FileConfig(path, resolved("project"), resolved("home"), values.get("backend"), values.get("env"))


def resolve_settings(project: Path | None, home: Path | None, backend: str | None, sources: dict[str, str],
                     cwd: Path | None = None, use_file: bool = True, env: str | None = None) -> Settings:
    """Apply the precedence: a value given (flag or environment, named in `sources`) > funnelops.toml > default.

    A given value never needs the file, but a bad file is still refused (it would mislead the next
    command that does need it). `use_file=False` (a `--help`) ignores it: help always answers.
    """
    found = find_config(cwd or Path.cwd()) if use_file else None
    conf = load_config(found) if found is not None else None
    origin = str(found) if found is not None else "file"

    def pick(given: Any, from_file: Any, default: Any, key: str) -> Any:
        if given is not None:
            sources[key] = sources.get(key, "flag")
            return given
        if from_file is not None:
            sources[key] = origin
            return from_file
        sources[key] = "default"
        return default

    chosen_project = pick(project, conf.project if conf else None, DEFAULT_PROJECT, "project")
    chosen_home = pick(home, conf.home if conf else None, DEFAULT_HOME, "home")
    chosen_backend = pick(backend, conf.backend if conf else None, None, "backend")
    chosen_env = pick(env or None, conf.env if conf else None, None, "env")
    if chosen_env is None:
        sources.pop("env")  # no environment: nothing to say where it came from
    used = found if found is not None and origin in sources.values() else None
    return Settings(chosen_project, env_home(chosen_home, chosen_env), chosen_backend, used, sources, chosen_env)


def write_config(folder: Path, project: str, home: str = ".funnelops", backend: str = "local") -> Path:
    """Write `<folder>/funnelops.toml` (used by `demo` and `init`); returns its path."""
    path = folder / CONFIG_NAME
    path.write_text(
        "# funnelops reads this file from this folder and its subfolders (flags and FUNNELOPS_* variables win).\n"
        "# Relative paths resolve against this folder.\n"
        f'project = "{project}"\nhome = "{home}"\nbackend = "{backend}"\n', encoding="utf-8")
    return path


def missing_project_error(settings: Settings) -> UsageError:
    """The project file is missing: say where it was looked for, why there, and what to do."""
    where = settings.project.expanduser().absolute()
    origin = settings.sources.get("project", "default")
    why = {"flag": "given with --project", "env": "from FUNNELOPS_PROJECT",
           "default": f"the default ./{DEFAULT_PROJECT}, and no {CONFIG_NAME} in this folder or its parents"}.get(
        origin, f"from `project` in {origin}")
    return UsageError(
        f"no project file at {where} ({why})",
        "start one with `funnelops init DIR` (then cd into it), pass --project PATH (or set FUNNELOPS_PROJECT), "
        f"or cd into a project folder (one with {DEFAULT_PROJECT} or {CONFIG_NAME})",
        project=str(where), config_file=str(settings.config_file) if settings.config_file else None)
