"""Dataproc's rules on workflow templates that the discovery document states only in prose.

Kept apart from ``dataproc.py`` (the service: storage, versions, operations) because these are
the checks that let defects through when missing: a parameter whose ``fields`` path does not
resolve, an instantiation without a value for every declared parameter, a cluster Dataproc would
refuse to create. Each rule quotes its source in the message where it can.

* ``TemplateParameter.fields``: each path resolves against the template (``jobs['step-id']``
  selects a step by id, ``[i]`` an item of a repeated field, ``['key']`` a map value), points at
  one value (not a whole map or list), and appears in at most one parameter. Names are capital
  letters, digits and ``_``, not starting with a digit, at most 40 characters.
  ``validation.regex.regexes`` are well-formed.
* ``InstantiateWorkflowTemplateRequest.parameters``: "values for parameters must be provided
  when the template is instantiated" (every declared one), no unknown names, each value at most
  1000 characters and matching every regex of its parameter in its entirety; the values are then
  substituted into the running copy of the template.
* ``ManagedCluster.clusterName``: lowercase letters, digits and hyphens, starting with a letter,
  not ending with a hyphen, 2-35 characters. Primary workers: 1 is refused; 0 only with the
  single-node property ``dataproc:dataproc.allow.zero.workers=true`` (an explicit 0: proto3 JSON
  omits a 0, which Dataproc reads as "default"). ``gceClusterConfig.serviceAccount`` is an
  e-mail address. ``initializationActions[].executableFile`` is a ``gs://`` URI and
  ``executionTimeout`` a JSON Duration.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from .common import bad_request

_PARAM_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,39}$")
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[(?:'[^']*'|\d+)\])*)")
_INDEX = re.compile(r"\[(?:'([^']*)'|(\d+))\]")
_CLUSTER = re.compile(r"^[a-z](?:[a-z0-9-]{0,33}[a-z0-9])$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
ZERO_WORKERS = "dataproc:dataproc.allow.zero.workers"
STEP_ID = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9_-]{1,48})[a-zA-Z0-9]$")
JOB_TYPES = ("hadoopJob", "sparkJob", "pysparkJob", "hiveJob", "pigJob", "sparkRJob",
              "sparkSqlJob", "prestoJob", "trinoJob", "flinkJob")


def check_structure(body: dict[str, Any]) -> None:
    """Placement, steps (ids, one job type, known prerequisites, no cycle) and the DAG timeout."""
    placement = body.get("placement") or {}
    if sum(k in placement for k in ("managedCluster", "clusterSelector")) != 1:
        raise bad_request("placement needs exactly one of managedCluster or clusterSelector")
    steps = [j.get("stepId", "") for j in body.get("jobs") or []]
    for job in body.get("jobs") or []:
        if not STEP_ID.match(job.get("stepId", "")):
            raise bad_request(f"Invalid step id {job.get('stepId')!r}")
        kinds = [k for k in JOB_TYPES if k in job]
        if len(kinds) != 1:
            raise bad_request(f"Step {job['stepId']}: exactly one job type is required, got {kinds}")
        for pre in job.get("prerequisiteStepIds") or []:
            if pre not in steps:
                raise bad_request(f"Step {job['stepId']}: unknown prerequisite step {pre!r}")
    if len(set(steps)) != len(steps):
        raise bad_request(f"Step ids must be unique, got {steps}")
    check_acyclic({j["stepId"]: list(j.get("prerequisiteStepIds") or []) for j in body.get("jobs") or []})
    timeout = body.get("dagTimeout")
    if timeout is not None and not 600 <= float(timeout.rstrip("s")) <= 86400:
        raise bad_request(f"dagTimeout {timeout} must be between 600s and 86400s")


def check_acyclic(graph: dict[str, list[str]]) -> None:
    seen: dict[str, int] = {}

    def visit(node: str) -> None:
        if seen.get(node) == 1:
            raise bad_request(f"Workflow jobs form a cycle through step {node!r}")
        if seen.get(node) == 2:
            return
        seen[node] = 1
        for pre in graph.get(node, []):
            visit(pre)
        seen[node] = 2

    for n in graph:
        visit(n)


def _keys(path: str) -> list[tuple[str, str | int]]:
    """A field path as ('field', name) / ('key', map key or step id) / ('index', i) steps."""
    out: list[tuple[str, str | int]] = []
    for seg in path.split("."):
        m = _SEGMENT.fullmatch(seg)
        if not m:
            raise bad_request(f"Invalid field path {path!r}: cannot parse {seg!r}")
        out.append(("field", m.group(1)))
        for key, idx in _INDEX.findall(m.group(2)):
            out.append(("index", int(idx)) if idx else ("key", key))
    return out


def _resolve(tpl: dict[str, Any], path: str) -> tuple[Any, str | int]:
    """(container, key) of the single value a field path names, or 400 naming the path."""
    steps = _keys(path)
    node: Any = tpl
    for n, (kind, key) in enumerate(steps):
        last = n == len(steps) - 1
        if kind == "field":
            ok = isinstance(node, dict) and isinstance(key, str) and (key in node)
        elif kind == "index":
            ok = isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)
        elif isinstance(node, list):  # jobs['step-id']
            hit = next((i for i, j in enumerate(node) if isinstance(j, dict) and j.get("stepId") == key), None)
            ok, key = hit is not None, (hit if hit is not None else key)
        else:
            ok = isinstance(node, dict) and key in node
        if not ok:
            raise bad_request(f"Invalid field path {path!r}: {_shown(steps[:n + 1])} does not exist in "
                              "the template")
        if last:
            if isinstance(node[key], (dict, list)):
                raise bad_request(f"Invalid field path {path!r}: it names a whole map or repeated field; "
                                  "reference one map value or one item")
            return node, key
        node = node[key]
    raise bad_request(f"Invalid field path {path!r}")


def _shown(steps: list[tuple[str, str | int]]) -> str:
    text = ""
    for kind, key in steps:
        text += (f".{key}" if text else str(key)) if kind == "field" else (
            f"[{key}]" if kind == "index" else f"['{key}']")
    return text


def check_parameters(tpl: dict[str, Any]) -> None:
    """The template's parameters: names, field paths (resolved, each in one parameter), regexes."""
    seen_names: set[str] = set()
    owner: dict[str, str] = {}
    for prm in tpl.get("parameters") or []:
        name = prm.get("name") or ""
        if not _PARAM_NAME.match(name):
            raise bad_request(f"Invalid parameter name {name!r}: capital letters, digits and '_', not starting "
                              "with a digit, at most 40 characters")
        if name in seen_names:
            raise bad_request(f"Parameter {name!r} is declared twice")
        seen_names.add(name)
        if len(prm.get("description") or "") > 1024:
            raise bad_request(f"Parameter {name}: description longer than 1024 characters")
        if not prm.get("fields"):
            raise bad_request(f"Parameter {name}: fields is required")
        for path in prm["fields"]:
            _resolve(tpl, path)
            if path in owner:
                raise bad_request(f"Field {path!r} appears in parameters {owner[path]} and {name}: a field is "
                                  "allowed to appear in at most one parameter's list of field paths")
            owner[path] = name
        regex = ((prm.get("validation") or {}).get("regex") or {})
        if "regex" in (prm.get("validation") or {}) and not regex.get("regexes"):
            raise bad_request(f"Parameter {name}: validation.regex.regexes is required")
        for rx in regex.get("regexes") or []:
            try:
                re.compile(rx)
            except re.error as exc:
                raise bad_request(f"Parameter {name}: invalid regex {rx!r}: {exc}") from None


def check_cluster(tpl: dict[str, Any]) -> None:
    """A managed cluster Dataproc would create: name, worker count, identity, actions."""
    managed = (tpl.get("placement") or {}).get("managedCluster")
    if not managed:
        return
    name = managed.get("clusterName") or ""
    if not _CLUSTER.match(name):
        raise bad_request(f"Invalid cluster name {name!r}: 2-35 lower-case letters, digits and hyphens, "
                          "beginning with a letter and not ending with a hyphen")
    conf = managed.get("config") or {}
    props = (conf.get("softwareConfig") or {}).get("properties") or {}
    workers = conf.get("workerConfig") or {}
    if "numInstances" in workers:
        n = int(workers["numInstances"])
        if n == 1:
            raise bad_request("workerConfig.numInstances 1 is not allowed: use 0 (single node, with "
                              f"{ZERO_WORKERS}=true) or at least 2")
        if n == 0 and str(props.get(ZERO_WORKERS, "")).lower() != "true":
            raise bad_request(f"workerConfig.numInstances 0 needs softwareConfig.properties "
                              f"{ZERO_WORKERS}=true (a single-node cluster)")
    sa = (conf.get("gceClusterConfig") or {}).get("serviceAccount")
    if sa is not None and not _EMAIL.match(sa):
        raise bad_request(f"gceClusterConfig.serviceAccount {sa!r} is not a service account e-mail")
    for i, action in enumerate(conf.get("initializationActions") or []):
        exe = action.get("executableFile") or ""
        if not exe.startswith("gs://"):
            raise bad_request(f"initializationActions[{i}].executableFile {exe!r} must be a Cloud Storage URI "
                              "(gs://bucket/object)")
        timeout = action.get("executionTimeout")
        if timeout is not None and not _DURATION.match(str(timeout)):
            raise bad_request(f"initializationActions[{i}].executionTimeout {timeout!r} is not a duration "
                              "such as '600s'")


def check_values(tpl: dict[str, Any], values: dict[str, Any]) -> None:
    """An instantiation's values: one for every declared parameter, none unknown, each valid."""
    params = {p.get("name"): p for p in tpl.get("parameters") or []}
    unknown = sorted(set(values) - set(params))
    if unknown:
        raise bad_request(f"Template {tpl.get('name')} has no parameters named {unknown}")
    missing = sorted(set(params) - set(values))
    if missing:
        raise bad_request(f"Template {tpl.get('name')}: values for parameters must be provided when the "
                          f"template is instantiated; missing {missing}")
    for name, value in values.items():
        if not isinstance(value, str) or len(value) > 1000:
            raise bad_request(f"Parameter {name}: the value must be a string of at most 1000 characters")
        regexes = (((params[name].get("validation") or {}).get("regex") or {}).get("regexes")) or []
        for rx in regexes:
            if not re.fullmatch(rx, value):
                raise bad_request(f"Parameter {name}: value {value!r} does not match {rx!r}")
        allowed = ((params[name].get("validation") or {}).get("values") or {}).get("values")
        if allowed is not None and value not in allowed:
            raise bad_request(f"Parameter {name}: value {value!r} is not one of {allowed}")


def substitute(tpl: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The template a run really executes: each value written at its parameter's fields."""
    out = copy.deepcopy(tpl)
    for prm in out.get("parameters") or []:
        if prm.get("name") in values:
            for path in prm.get("fields") or []:
                node, key = _resolve(out, path)
                node[key] = values[prm["name"]]
    return out
