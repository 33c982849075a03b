"""Checks that keep a project inside its bounds: what a step runs, which flags it may set, how big.

Three rules, each a small function over the loaded project that adds located problems:

- `main`: a module name or a .py file inside the project folder (see :mod:`funnelops.spec.mains`);
  `data.generator`, the sample-data generator, a .py file inside the project folder.
- Reserved names: `home` and `project` say where a run's state and definition are; the runtime
  sets them (FUNNELOPS_HOME / FUNNELOPS_PROJECT, and `--home`/`--project` appended last to the
  flows program), so no variable or argument may set them (`variables: {home: /elsewhere}` made the
  flows write a second ledger elsewhere). The flows program's selection flags (`granularity`,
  `execution_type`, `period`, `trusted_flows`, `refined_flows`) belong to a workflow, its stage
  arguments or the run, never to the project-wide variable group that every template inherits.
  `env` stays a variable: it only labels the environment.
- Sizes: a step's arguments travel on a command line (Linux refuses one argument over 128 KiB and
  a whole command line over ~2 MiB with E2BIG) and in a Dataproc template, so each argument is at
  most MAX_ARG_BYTES and a job's whole argument list at most MAX_JOB_ARGS_BYTES.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from collections.abc import Callable

from funnelops.errors import ProblemCollector
from funnelops.spec.mains import HINT as MAIN_HINT
from funnelops.spec.mains import generator_problem, main_problem
from funnelops.spec.models import arg_key, variable_args

if TYPE_CHECKING:
    from funnelops.spec.project import LoadedProject

RUNTIME_ONLY = ("home", "project", "lease")  # lease: the run tail carries it (backends/run_params.py)
FLOW_SELECTION = ("granularity", "execution_type", "period", "trusted_flows", "refined_flows")
RESERVED_VARIABLES = RUNTIME_ONLY + FLOW_SELECTION
MAX_ARG_BYTES = 8 * 1024
MAX_JOB_ARGS_BYTES = 64 * 1024

Ln = Callable[[tuple], "int | None"]


def check_confinement(loaded: LoadedProject, file: str, c: ProblemCollector) -> None:
    """Every check of this module (one call from `validate.resolve_and_check`)."""
    check_mains(loaded, file, c)
    check_reserved_names(loaded, file, c)
    check_arg_sizes(loaded, file, c)


def check_mains(loaded: LoadedProject, file: str, c: ProblemCollector) -> None:
    for i, w in enumerate(loaded.spec.workflows):
        for k, job in enumerate(w.jobs):
            problem = main_problem(job.main, loaded.base_dir)
            if problem:
                c.add(file, loaded.line_of(("workflows", i, "jobs", k, "main")),
                      f"workflows[{w.name}].jobs[{job.step_id}].main", problem, MAIN_HINT)
    data = loaded.spec.data
    if data is not None:
        problem = generator_problem(data.generator, loaded.base_dir)
        if problem:
            c.add(file, loaded.line_of(("data", "generator")), "data.generator", problem,
                  "name a .py file inside the project folder, relative to the project file (generate.py)")


def _arg_lists(loaded: LoadedProject):
    """(path, field label, args) of every argument list a project gives."""
    spec = loaded.spec
    for stage in ("iac", "initial_data", "workflow"):
        yield ("stages", stage), f"stages.{stage}", list(getattr(spec.stages, stage))
    for i, w in enumerate(spec.workflows):
        yield ("workflows", i, "args"), f"workflows[{w.name}].args", list(w.args)
        for k, job in enumerate(w.jobs):
            yield ("workflows", i, "jobs", k, "args"), f"workflows[{w.name}].jobs[{job.step_id}].args", list(job.args)


def check_reserved_names(loaded: LoadedProject, file: str, c: ProblemCollector) -> None:
    for key in loaded.spec.variables:
        if key.lower() in RESERVED_VARIABLES:
            why = ("the runtime sets it" if key.lower() in RUNTIME_ONLY
                   else "it selects what a run does, so it belongs to a workflow's args or a stage")
            c.add(file, loaded.line_of(("variables", key)), f"variables.{key}",
                  f"'{key}' is a reserved name: {why}",
                  "rename the variable" if key.lower() in RUNTIME_ONLY else "move it to the workflow's `args`")
    for path, label, args in _arg_lists(loaded):
        for n, arg in enumerate(args):
            key = arg_key(arg)
            if key.lower() in RUNTIME_ONLY:
                c.add(file, loaded.line_of(path + (n,)), label,
                      f"'--{key}' is reserved: the runtime passes the run's {key} itself",
                      "remove the argument; use --home/--project (or FUNNELOPS_HOME/FUNNELOPS_PROJECT) on the CLI")


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def check_arg_sizes(loaded: LoadedProject, file: str, c: ProblemCollector) -> None:
    spec = loaded.spec
    limit = f"{MAX_ARG_BYTES // 1024} KiB"
    for key, arg in zip(spec.variables, variable_args(spec.variables)):
        if _size(arg) > MAX_ARG_BYTES:
            c.add(file, loaded.line_of(("variables", key)), f"variables.{key}",
                  f"the variable becomes a {_size(arg):,}-byte argument; a variable may be at most {limit}",
                  "keep large content in a file of the project and pass its name")
    for path, label, args in _arg_lists(loaded):
        for n, arg in enumerate(args):
            if _size(arg) > MAX_ARG_BYTES:
                c.add(file, loaded.line_of(path + (n,)), label,
                      f"argument {n + 1} is {_size(arg):,} bytes; an argument may be at most {limit}",
                      "keep large content in a file of the project and pass its name")
    _check_job_totals(loaded, file, c)


def _check_job_totals(loaded: LoadedProject, file: str, c: ProblemCollector) -> None:
    from funnelops.spec.project import template_args

    for i, w in enumerate(loaded.spec.workflows):
        for k, job in enumerate(w.jobs):
            worst = max(sum(_size(a) + 1 for a in template_args(loaded, w.name, stage, job.args))
                        for stage in ("iac", "initial_data", "workflow"))
            if worst > MAX_JOB_ARGS_BYTES:
                c.add(file, loaded.line_of(("workflows", i, "jobs", k)), f"workflows[{w.name}].jobs[{job.step_id}]",
                      f"the job's arguments (variables, workflow, job and stage arguments) total {worst:,} bytes; "
                      f"at most {MAX_JOB_ARGS_BYTES // 1024} KiB", "make the variables or arguments shorter")
