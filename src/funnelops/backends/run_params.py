"""What varies per run of a workflow template, and the values every instantiation must send.

Dataproc refuses an instantiation that lacks a value for any declared parameter ("values for
parameters must be provided when the template is instantiated"), so only what really varies per
run is a parameter. Every step whose main is the flows program gets a *run tail* appended to its
arguments, after the workflow's and the stage's (the flows parser keeps the LAST value of a key);
the step's own ``--execution_type=`` and ``--period=`` arguments move into the tail (one copy each):

    --execution_type=<the step's last --execution_type, else delta>  --lease=scheduled
    --period=<the step's last --period, else current>  --workflow=<name>

and the template declares three parameters over those tail arguments:

* ``FO_EXECUTION_TYPE``: the tail's ``--execution_type=`` argument in every flows step
  (``--execution_type=full`` for the initial load);
* ``FO_LEASE``: the tail's ``--lease=`` argument in every flows step (``--lease=scheduled`` when
  Cloud Scheduler fires, ``--lease=<owner token>`` when the CLI took the lease);
* ``FO_PERIOD``: the tail's ``--period=`` argument (``--period=current`` unless a run asks for one
  period: a forced run or a backfill over historical data, ``--period=2024-03``).

User-declared parameters (``workflows[].parameters`` in the spec) need a value on every run too:
their spec ``value``, or else the value the template holds at the parameter's first field, so a
run funnelops starts reads exactly as the template does.

Everything here is pure: the local and the gcp backends show the same template, and the values
sent by the CLI, by the initial load and in the Cloud Scheduler job's HTTP body come from one
function (:func:`instantiate_values`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from funnelops.errors import UsageError

FLOWS_MAIN = "funnelops.flows"
EXECUTION_PARAM = "FO_EXECUTION_TYPE"
LEASE_PARAM = "FO_LEASE"
PERIOD_PARAM = "FO_PERIOD"
RUN_PARAMS = (EXECUTION_PARAM, LEASE_PARAM, PERIOD_PARAM)
SCHEDULED_LEASE = "scheduled"
EXECUTION_REGEX = r"^--execution_type=(full|delta)$"
LEASE_REGEX = r"^--lease=[A-Za-z0-9_-]{1,64}$"
PERIOD_REGEX = r"^--period=(current|previous|\d{4}(-\d{2}(-\d{2})?)?)$"
CURRENT_PERIOD = "current"
CARRIED = ("--execution_type=", "--period=")  # keys whose last value the run tail carries
_DESCRIPTIONS = {
    EXECUTION_PARAM: "funnelops: --execution_type of one run (full for the initial load)",
    LEASE_PARAM: "funnelops: whose lease the run works under (scheduled: it takes the lease itself)",
    PERIOD_PARAM: "funnelops: the period one run processes (current, previous, YYYY, YYYY-MM or YYYY-MM-DD)",
}


def arg_field(step_id: str, index: int) -> str:
    """A Dataproc parameter field path to one argument of a PySpark step (REST JSON names)."""
    return f"jobs['{step_id}'].pysparkJob.args[{index}]"


def default_execution_type(args: Sequence[str]) -> str:
    """The execution type the args select: the last `--execution_type=`, else delta."""
    found = [a.split("=", 1)[1] for a in args if a.startswith("--execution_type=")]
    return found[-1].lower() if found else "delta"


def default_period(args: Sequence[str]) -> str:
    """The period the args select: the last `--period=`, else current."""
    found = [a.split("=", 1)[1] for a in args if a.startswith("--period=")]
    return found[-1] if found and found[-1] else CURRENT_PERIOD


def run_tail(args: Sequence[str], workflow: str | None = None) -> list[str]:
    """The tail of a flows step: the three parameterised args, then (constant, LAST) the workflow's
    name, which the program on Dataproc needs to find its lease (backends/gcp/cluster_lease.py)."""
    tail = [f"--execution_type={default_execution_type(args)}", f"--lease={SCHEDULED_LEASE}",
            f"--period={default_period(args)}"]
    return tail + ([f"--workflow={workflow}"] if workflow else [])


def with_run_tail(jobs: list[dict[str, Any]], parameters: list[dict[str, Any]], workflow: str | None = None
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Neutral template jobs and parameters -> the same with the run tail and its three parameters.

    Jobs are neutral step configs (`step_id`, `main`, `args`...); parameters are neutral ones
    (`name`, `fields`, `description`, `regexes`). Steps that do not run the flows program are
    left alone; a template without any has no run parameters.
    """
    out_jobs, exec_fields, lease_fields, period_fields = [], [], [], []
    for job in jobs:
        job = {**job, "args": list(job["args"])}
        if job["main"] == FLOWS_MAIN:
            tail = run_tail(job["args"], workflow)
            # the tail carries the step's execution type and period (their last values): the earlier
            # copies would only repeat them in every template, run and status (`--period=previous`
            # twice), so they go, and each key appears once, in the slot a run's parameter replaces
            job["args"] = [a for a in job["args"] if not a.startswith(CARRIED)]
            n = len(job["args"])
            job["args"] += tail
            exec_fields.append(arg_field(job["step_id"], n))
            lease_fields.append(arg_field(job["step_id"], n + 1))
            period_fields.append(arg_field(job["step_id"], n + 2))
        out_jobs.append(job)
    params = [dict(p) for p in parameters]
    if exec_fields:
        params.append({"name": EXECUTION_PARAM, "fields": exec_fields,
                       "description": _DESCRIPTIONS[EXECUTION_PARAM], "regexes": [EXECUTION_REGEX]})
        params.append({"name": LEASE_PARAM, "fields": lease_fields,
                       "description": _DESCRIPTIONS[LEASE_PARAM], "regexes": [LEASE_REGEX]})
        params.append({"name": PERIOD_PARAM, "fields": period_fields,
                       "description": _DESCRIPTIONS[PERIOD_PARAM], "regexes": [PERIOD_REGEX]})
    return out_jobs, params


# -- field paths --------------------------------------------------------------------------------
_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[(?:'[^']*'|\d+)\])*)")
_INDEX = re.compile(r"\[('([^']*)'|(\d+))\]")


def parse_field(path: str) -> list[str | int]:
    """`jobs['s'].pysparkJob.args[3]` -> ['jobs', "'s'", 'pysparkJob', 'args', 3]; ValueError if malformed.

    A quoted key stays quoted so a step id (or map key) is told apart from a field name."""
    out: list[str | int] = []
    for seg in path.split("."):
        m = _SEGMENT.fullmatch(seg)
        if not m:
            raise ValueError(f"malformed field path {path!r} (at {seg!r})")
        out.append(m.group(1))
        for km in _INDEX.finditer(m.group(2)):
            out.append(f"'{km.group(2)}'" if km.group(2) is not None else int(km.group(3)))
    return out


def field_value(body: dict[str, Any], path: str) -> Any:
    """The value a field path points at in a Dataproc template body; KeyError naming the path."""
    node: Any = body
    for key in parse_field(path):
        if isinstance(node, list) and isinstance(key, str) and key.startswith("'"):  # jobs['step-id']
            node = next((j for j in node if isinstance(j, dict) and j.get("stepId") == key[1:-1]), None)
        elif isinstance(key, int):
            node = node[key] if isinstance(node, list) and 0 <= key < len(node) else None
        elif isinstance(node, dict):
            node = node.get(key[1:-1] if key.startswith("'") else key)
        else:
            node = None
        if node is None:
            raise KeyError(f"field path {path!r} does not resolve in the template")
    return node


def substitute(body: dict[str, Any], values: Mapping[str, str]) -> dict[str, Any]:
    """A copy of the template body with each parameter's value written at its fields (what runs)."""
    import copy

    out = copy.deepcopy(body)
    for prm in out.get("parameters") or []:
        if prm.get("name") not in values:
            continue
        for path in prm.get("fields") or []:
            keys = parse_field(path)
            parent: Any = field_value(out, _join(keys[:-1])) if len(keys) > 1 else out
            last = keys[-1]
            parent[last if isinstance(last, int) else last.strip("'")] = values[prm["name"]]
    return out


def _join(keys: list[str | int]) -> str:
    text = ""
    for k in keys:
        text += f"[{k}]" if isinstance(k, int) or k.startswith("'") else (f".{k}" if text else k)
    return text


# -- values -------------------------------------------------------------------------------------
def instantiate_values(body: dict[str, Any], *, lease: str = SCHEDULED_LEASE, extra_args: Sequence[str] = (),
                       values: Mapping[str, str] | None = None, workflow: str = "") -> dict[str, str]:
    """A value for EVERY parameter the Dataproc template body declares.

    `extra_args` may only vary the execution type (`--execution_type=full|delta`) and the period
    (`--period=...`): that is all a run can change without changing the template (the last of
    each wins). `values` are the spec's values of user parameters; a parameter without one keeps
    the template's value at its first field.
    """
    values = dict(values or {})
    execution = period = None
    for arg in extra_args:
        if re.fullmatch(EXECUTION_REGEX, arg):
            execution = arg
        elif re.fullmatch(PERIOD_REGEX, arg):
            period = arg
        else:
            raise UsageError(f"cannot pass {arg} to a run of {workflow or 'this workflow'}: a run can only vary "
                             "--execution_type=full|delta and --period=current|previous|YYYY[-MM[-DD]]",
                             "change the workflow's args in the project instead")
    out: dict[str, str] = {}
    for prm in body.get("parameters") or []:
        name = prm.get("name", "")
        if name == LEASE_PARAM:
            out[name] = f"--lease={lease}"
        elif name == EXECUTION_PARAM and execution is not None:
            out[name] = execution
        elif name == PERIOD_PARAM and period is not None:
            out[name] = period
        elif name in values:
            out[name] = str(values[name])
        else:
            out[name] = str(field_value(body, (prm.get("fields") or [""])[0]))
    return out
