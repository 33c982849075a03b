"""`environments:`: named overlays (dev, prod...) deep-merged over the project's base document.

Why: a dev and a prod GCP project were two copies of `funnel.yaml` that drifted (issue 15). Now
one file holds the shared base and, per environment, only what differs:

    environments:
      prod:
        project: {id: acme-crm-prod}
        workflows: [{name: crm-daily, placement: {workers: 8}}]

The merge runs on the parsed document, before validation, and carries the line of every value
with it, so an error in a value the overlay set points at the overlay's line:
- mappings merge key by key;
- lists of named items (each a mapping with `name`, or `id`, or `step_id`; tables, external
  tables and views by `dataset` + `name`) merge item by item on that key; an overlay item with
  a new key is appended;
- any other list, and every scalar, is replaced by the overlay's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from funnelops.errors import Problem, ProblemCollector, ProjectError

Path_ = tuple[Any, ...]
ENV_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
KEY = "environments"
# The variable interpolation sees as the selected environment's name (set by funnelops itself)
ENV_VARIABLE = "FUNNELOPS_ENV"


def declared(data: Mapping[str, Any]) -> list[str]:
    """The environment names the document declares (well-formed or not), in file order."""
    envs = data.get(KEY)
    return [str(k) for k in envs] if isinstance(envs, dict) else []


def check_block(data: Mapping[str, Any], lines: Mapping[Path_, int], file: str, problems: ProblemCollector) -> None:
    """The shape of `environments:` itself: a mapping of names to partial project documents."""
    envs = data.get(KEY)
    if KEY not in data or envs is None:
        return
    if not isinstance(envs, dict):
        problems.add(file, lines.get((KEY,)), KEY, "must be a mapping of environment names to overlays",
                     "e.g. environments: {dev: {}, prod: {project: {id: acme-prod}}}")
        return
    for name, overlay in envs.items():
        where = (KEY, name)
        if not ENV_NAME.match(str(name)):
            problems.add(file, lines.get(where), f"{KEY}.{name}", "key: an environment name must be 1-31 lowercase "
                         "letters, digits and -, starting with a letter", "e.g. dev, prod, staging")
        if overlay is not None and not isinstance(overlay, dict):
            problems.add(file, lines.get(where), f"{KEY}.{name}", "an overlay must be a mapping (a partial project)",
                         "e.g. prod: {project: {id: acme-prod}}")
        elif isinstance(overlay, dict) and KEY in overlay:
            problems.add(file, lines.get(where + (KEY,)), f"{KEY}.{name}.{KEY}", "overlays cannot declare "
                         "environments", "move it to the top-level `environments:`")


def unknown_env_error(env: str, data: Mapping[str, Any], lines: Mapping[Path_, int], file: str) -> ProjectError:
    names = declared(data)
    if names:
        hint = f"use one of: {', '.join(names)} (--env, FUNNELOPS_ENV or `env` in funnelops.toml)"
        message = f"unknown environment '{env}': the project declares {', '.join(names)}"
    else:
        hint = f"declare it in the project (environments: {{{env}: {{...}}}}), or drop --env / FUNNELOPS_ENV / `env`"
        message = f"unknown environment '{env}': the project declares no environments"
    return ProjectError([Problem(file, lines.get((KEY,)) or 1, KEY, message, hint)])


def select(data: dict[str, Any], lines: Mapping[Path_, int], env: str | None, file: str
           ) -> tuple[dict[str, Any], dict[Path_, int]]:
    """The document `env` sees: the base with `env`'s overlay merged over it (None: the base as
    written), and its path -> line map. `environments:` itself is not part of the result."""
    base = {k: v for k, v in data.items() if k != KEY}
    out_lines = {p: n for p, n in lines.items() if not (p and p[0] == KEY)}
    if env is None:
        return base, out_lines
    envs = data.get(KEY)
    if not isinstance(envs, dict) or env not in envs:
        raise unknown_env_error(env, data, lines, file)
    overlay = envs[env] or {}
    merged = _merge(base, overlay, (), (KEY, env), lines, out_lines)
    project = merged.get("project")
    if isinstance(project, dict) and "environment" not in (overlay.get("project") or {}):
        merged["project"] = {**project, "environment": env}  # the label follows the selected environment
        out_lines[("project", "environment")] = lines.get((KEY, env), 1)
    return merged, out_lines


def _item_key(item: Any) -> tuple[Any, ...] | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("dataset"), str) and isinstance(item.get("name"), str):
        return ("dataset+name", item["dataset"], item["name"])
    for key in ("name", "id", "step_id"):
        if isinstance(item.get(key), (str, int)):
            return (key, item[key])
    return None


def _named(items: list[Any]) -> bool:
    return all(_item_key(i) is not None for i in items)


def _merge(base: Any, over: Any, at: Path_, src: Path_, lines: Mapping[Path_, int], out: dict[Path_, int]) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for k, v in over.items():
            if k in base:
                merged[k] = _merge(base[k], v, at + (k,), src + (k,), lines, out)
            else:
                merged[k] = v
                _reroot(lines, src + (k,), at + (k,), out)
        return merged
    if isinstance(base, list) and isinstance(over, list) and base and _named(base) and _named(over):
        merged_list = list(base)
        index = {_item_key(item): i for i, item in enumerate(base)}
        for j, item in enumerate(over):
            i = index.get(_item_key(item))
            if i is not None:
                merged_list[i] = _merge(base[i], item, at + (i,), src + (j,), lines, out)
            else:
                merged_list.append(item)
                _reroot(lines, src + (j,), at + (len(merged_list) - 1,), out)
        return merged_list
    for p in [p for p in out if p[:len(at)] == at and len(p) > len(at)]:
        del out[p]  # what the base had under a replaced value
    _reroot(lines, src, at, out)
    return over


def _reroot(lines: Mapping[Path_, int], src: Path_, at: Path_, out: dict[Path_, int]) -> None:
    n = len(src)
    for p, line in lines.items():
        if p[:n] == src:
            out[at + p[n:]] = line


def select_leniently(data: dict[str, Any], lines: Mapping[Path_, int], env: str | None, file: str) -> dict[str, Any]:
    """`select` for readers that must not fail on the rest of the file (a run's end notification):
    an environment the file does not declare reads as the base; `${VAR}` is resolved where it can be."""
    import os

    from funnelops.spec.interpolate import substitute

    chosen = env if env in declared(data) and isinstance(data.get(KEY), dict) else None
    try:
        merged, _ = select(data, lines, chosen, file)
    except ProjectError:
        merged = {k: v for k, v in data.items() if k != KEY}
    environ = dict(os.environ, **({ENV_VARIABLE: chosen} if chosen else {}))

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return substitute(value, environ)[0] if isinstance(value, str) and "${" in value else value

    return walk(merged)
