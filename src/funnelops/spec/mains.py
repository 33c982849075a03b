"""What a workflow job's `main` may name: a Python module, or a .py file inside the project folder.

A step runs `python -m <module>` or `python <file>`; an absolute path or `../../..` in `main`
would run any file on the machine under the runner's account. So a file main is a relative path
(portable characters, no `..`) that, once resolved with symlinks followed, still lies inside the
project folder and is a regular file. `validate` reports a bad `main` at its line; the local
supervisor applies the same rule again before starting the step (a template in the ledger may
have been written by an older funnelops or by hand), and Dataproc's launcher checks a file main
against the unpacked project folder.
"""

from __future__ import annotations

import re
from pathlib import Path

MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
REL_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.py$")
HINT = ("use a module name (funnelops.flows) or a .py file inside the project folder, "
        "relative to the project file (steps/my_step.py)")


def is_module(main: str) -> bool:
    return bool(MODULE.match(main)) and not main.endswith(".py")


def main_problem(main: str, project_dir: Path | None) -> str | None:
    """Why `main` may not run (None when it may). `project_dir` None: only modules are allowed."""
    if is_module(main):
        return None
    return file_problem(main, project_dir, "main")


def generator_problem(generator: str, project_dir: Path | None) -> str | None:
    """Why the project's sample-data generator (`data.generator`) may not run: the same rule as a
    file main (a .py file inside the project folder); a module name is not allowed, since
    funnelops loads the generator by path and never imports a project by name."""
    return file_problem(generator, project_dir, "generator")


def file_problem(rel: str, project_dir: Path | None, what: str) -> str | None:
    """Why `rel` is not a .py file inside `project_dir` (None when it is); `what` names the field."""
    if rel.startswith("/") or rel.startswith("~"):
        return f"{what} '{rel}' is an absolute path"
    if not rel.endswith(".py"):
        return (f"{what} '{rel}' is neither a module name nor a .py file" if what == "main"
                else f"{what} '{rel}' is not a .py file")
    if ".." in rel.split("/") or not REL_FILE.match(rel):
        return f"{what} '{rel}' is not a plain relative path (letters, digits, _ . - and /, no '..')"
    if project_dir is None:
        return f"{what} '{rel}' is a file, but the project folder is not known here"
    base = Path(project_dir).resolve()
    target = (base / rel).resolve()
    try:
        target.relative_to(base)
    except ValueError:
        return f"{what} '{rel}' leads outside the project folder (through a symlink)"
    if not target.is_file():
        return f"{what} '{rel}' is not a file in the project folder ({target})"
    return None


def resolve_main(main: str, project_dir: Path | None) -> Path:
    """The file a (checked) file main names; raises ValueError with the reason otherwise."""
    problem = main_problem(main, project_dir)
    if problem is not None or is_module(main):
        raise ValueError(problem or f"main '{main}' is a module, not a file")
    assert project_dir is not None
    return (Path(project_dir).resolve() / main).resolve()
