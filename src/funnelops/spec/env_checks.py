"""Names two environments must not share, checked across every environment the file declares.

Why: an overlay that forgets to rename a bucket makes `--env prod` deploy into dev's bucket (bucket
names are global on Google Cloud), and two environments in one GCP project that share a dataset,
a workflow template or a scheduler id overwrite each other. `validate` resolves each declared
environment's document (its overlay merged) and reports every name two of them share, at the line
the second environment's value comes from.

Values are compared after `${FUNNELOPS_ENV}` is replaced by each environment's name; a value that
names any other variable, with a default or not, is left out: it is fed per environment (a
variable group; the default serves runs without one), so whether two environments share it cannot
be told from the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from funnelops.errors import Problem
from funnelops.spec import environments
from funnelops.spec.interpolate import has_reference, substitute, variables
from funnelops.spec.project import line_for

Path_ = tuple[Any, ...]
HINT = ("make it differ per environment: set it in the overlay of one of them, or write it with ${FUNNELOPS_ENV} "
        "(the environment's name) or a variable, e.g. name: acme-${FUNNELOPS_ENV}-raw")


def _value(doc: Mapping[str, Any], path: Path_, env: str) -> str | None:
    """The value at `path` with `${FUNNELOPS_ENV}` resolved; None when absent or fed by another variable."""
    node: Any = doc
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            return None
    if not isinstance(node, (str, int)):
        return None
    if any(name != environments.ENV_VARIABLE for name in variables(str(node))):
        return None  # fed per environment (its variable group), even when it has a default for local use
    text, missing, malformed = substitute(str(node), {environments.ENV_VARIABLE: env})
    if missing or malformed or has_reference(text.replace("$${", "")):
        return None
    return text


def _names(doc: Mapping[str, Any], env: str) -> Iterator[tuple[tuple[str, ...], str, Path_]]:
    """(identity, what it is, the path of its value) for each name that must be unique to `env`."""
    project = _value(doc, ("project", "id"), env)
    region = _value(doc, ("project", "region"), env) or "us-east1"
    for i, _ in enumerate(doc.get("buckets") or []):
        name = _value(doc, ("buckets", i, "name"), env)
        if name:
            yield ("bucket", name), f"bucket '{name}'", ("buckets", i, "name")
    if not project:
        return
    for i, _ in enumerate(doc.get("datasets") or []):
        ds = _value(doc, ("datasets", i, "id"), env)
        if ds:
            yield ("dataset", project, ds), f"dataset '{ds}' of GCP project '{project}'", ("datasets", i, "id")
    for i, _ in enumerate(doc.get("workflows") or []):
        wf = _value(doc, ("workflows", i, "name"), env)
        if wf:
            yield (("workflow", project, region, wf), f"workflow template '{wf}' of GCP project '{project}' "
                   f"({region})", ("workflows", i, "name"))
    for i, _ in enumerate(doc.get("schedulers") or []):
        sid = _value(doc, ("schedulers", i, "id"), env)
        if sid:
            yield (("scheduler", project, region, sid), f"scheduler id '{sid}' of GCP project '{project}' "
                   f"({region})", ("schedulers", i, "id"))


def cross_environment_problems(raw: dict[str, Any], raw_lines: Mapping[Path_, int], file: str) -> list[Problem]:
    """Every name two declared environments share (one problem per pair and name)."""
    from funnelops.spec.loader import _field_name  # list items named as every other problem names them

    names = [n for n in environments.declared(raw) if environments.ENV_NAME.match(n)]
    if len(names) < 2 or not isinstance(raw.get(environments.KEY), dict):
        return []
    seen: dict[tuple[str, ...], str] = {}  # identity -> the first environment that has it
    problems: list[Problem] = []
    for env in names:
        try:
            doc, lines = environments.select(raw, raw_lines, env, file)
        except Exception:  # a malformed overlay: reported by loading that environment
            continue
        mine: set[tuple[str, ...]] = set()
        for identity, what, path in _names(doc, env):
            if identity in mine:
                continue  # the same name twice in one environment: the project checks catch it
            mine.add(identity)
            first = seen.setdefault(identity, env)
            if first != env:
                problems.append(Problem(file, line_for(lines, path), _field_name(doc, path),
                                        f"{what} is the same in environments {first} and {env}", HINT))
    return problems
