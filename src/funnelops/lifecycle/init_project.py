"""`funnelops init`: a new, neutral project a team edits instead of copying the example's.

The shipped example (projects/funnel) carries its own names, Spanish scheduler names and a data
generator; copying it meant renaming a dozen resources by hand, and its names then leaked into
help and hints. `init` writes a minimal project from the template in `funnelops/templates/init/`
(package data, so it works from any install; `.tmpl` files, so no linter or type checker takes
the template's flow for funnelops' own code), every name derived from one project name, plus
the project's JSON Schema beside it so an editor checks and completes the file (the
`# yaml-language-server: $schema=...` line at its top).

Everything is rendered in memory first and checked by the real loader on a scratch copy before
the first file is written: a name that would not validate is refused, nothing half-written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from funnelops.errors import UsageError

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "init"
PROJECT_FILE = "funnel.yaml"       # the CLI's default --project, so `cd DIR && funnelops validate` works
SCHEMA_FILE = "funnel.schema.json"
# Longest slug that keeps every derived name inside its pattern: buckets take `-artifacts` (63
# max), workflows `-monthly` (50 max for a Dataproc template id).
_MAX_SLUG = 40


@dataclass(frozen=True)
class Names:
    """Every name the template needs, derived from one project name."""

    name: str          # as the user gave it, for comments (one line, printable)
    slug: str          # lowercase letters, digits and `-`, starting with a letter: buckets, workflows
    ident: str         # the slug with `_`: datasets
    project_id: str    # a Google Cloud project id shape (6-30 chars)

    def tokens(self) -> dict[str, str]:
        return {"{{name}}": self.name, "{{slug}}": self.slug, "{{ident}}": self.ident,
                "{{wf}}": self.slug, "{{project_id}}": self.project_id}


@dataclass
class InitResult:
    directory: Path
    project: Path
    names: Names
    files: list[str] = field(default_factory=list)

    def next_steps(self) -> list[str]:
        """The commands that take the new project to its first refined table (run inside the folder)."""
        return [f"cd {shlex.quote(str(self.directory))}",
                "funnelops validate",
                "funnelops pipeline funnel --data-stage IaC",
                "funnelops data load path/to/leads.csv --flow leads",
                'funnelops pipeline funnel --data-stage "Initial data"',
                "funnelops pipeline workflow --scheduler monthly --wait",
                "funnelops status"]

    def to_dict(self) -> dict:
        return {"dir": str(self.directory), "project": str(self.project), "name": self.names.name,
                "slug": self.names.slug, "project_id": self.names.project_id, "files": self.files,
                "next_steps": self.next_steps()}


def derive_names(name: str) -> Names:
    """Names for every resource from `name` (`Acme CRM` -> acme-crm, acme_crm).

    Accents are folded (`Análisis` -> analisis), anything else outside [a-z0-9] becomes `-`; a
    name with no letter or digit is refused (there would be nothing to name the resources by).
    """
    shown = " ".join("".join(ch for ch in name if ch.isprintable()).split())
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", folded)).strip("-")
    if not slug:
        raise UsageError(f"project name {name!r} has no letter or digit to derive resource names from",
                         "pass --name with letters or digits, e.g. --name acme-crm")
    if not slug[0].isalpha():
        slug = f"p-{slug}"
    slug = slug[:_MAX_SLUG].rstrip("-")
    project_id = slug[:30].rstrip("-")
    if len(project_id) < 6:
        project_id = f"{project_id}-data"[:30]
    return Names(name=shown or slug, slug=slug, ident=slug.replace("-", "_"), project_id=project_id)


def render_files(names: Names) -> dict[str, str]:
    """The project's files (relative path -> text), the template with `names` filled in."""
    out: dict[str, str] = {}
    for path in sorted(TEMPLATE_DIR.rglob("*")):
        if not path.is_file() or path.suffix != ".tmpl":
            continue
        text = path.read_text(encoding="utf-8")
        for token, value in names.tokens().items():
            text = text.replace(token, value)
        out[path.relative_to(TEMPLATE_DIR).as_posix().removesuffix(".tmpl")] = text
    from funnelops.spec.schema import project_json_schema

    out[SCHEMA_FILE] = json.dumps(project_json_schema(), indent=2, ensure_ascii=False) + "\n"
    return out


def _check(files: dict[str, str]) -> None:
    """Load the rendered project from a scratch folder: a template that would not validate is a bug
    here, not a surprise for the user after the files are written."""
    from funnelops.errors import ProjectError
    from funnelops.spec.loader import load_project

    with tempfile.TemporaryDirectory(prefix="funnelops-init-") as tmp:
        _write(Path(tmp), files)
        try:
            load_project(Path(tmp) / PROJECT_FILE)
        except ProjectError as exc:  # pragma: no cover - the template is tested
            raise UsageError(f"internal: the init template does not validate: {exc.message}",
                             "report this; try another --name meanwhile") from None


def _write(directory: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        target = directory / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)


def init_project(directory: Path, name: str | None = None, force: bool = False) -> InitResult:
    """Write a new project into `directory` (created if missing).

    Refuses a directory that holds anything unless `force` (then the template's files overwrite
    theirs; other files stay)."""
    directory = directory.expanduser().absolute()
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory", "give a new or empty directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise UsageError(f"{directory} is not empty", "give a new or empty directory, or pass --force to write "
                                                       "the template's files into it (same-named files are overwritten)")
    names = derive_names(name if name is not None else directory.name)
    files = render_files(names)
    _check(files)
    if not directory.exists():
        directory.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.init-", dir=directory.parent))
        try:
            _write(staging, files)
            umask = os.umask(0)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)   # mkdtemp's 0700 is for the scratch name, not the project
            staging.replace(directory)   # the project appears whole or not at all
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    else:
        _write(directory, files)
    return InitResult(directory, directory / PROJECT_FILE, names, sorted(files))
