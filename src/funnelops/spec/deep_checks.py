"""What only `funnelops validate` checks: trusted flows executed, SQL parsed for what it writes.

Loading a project (every command) judges flows from their text (`spec/flow_checks.py`,
`spec/refined_checks.py`). `validate` goes as far as a run would go before reading data: it
executes each trusted flow module the way the flows program does (fresh, by path, binding the
`F`/`Window` of the local engine, SQLFrame: no JVM, no data), so an import error, a name error at
module level or a computed constant is reported at the flow's file and line; and it parses refined
and view SQL in the dialect the backend runs (DuckDB locally, BigQuery on gcp). Problems that are
certain to fail a run are errors; what may fail, or cannot be decided without data, is a warning.
"""

from __future__ import annotations

import importlib.util
import inspect
import traceback
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from funnelops.errors import Problem, ProblemCollector
from funnelops.spec import flow_checks
from funnelops.spec.flow_checks import REQUIRED, OPTIONAL, FlowSource

if TYPE_CHECKING:
    from funnelops.spec.project import LoadedProject


def inspect_project(loaded: LoadedProject, backend: str) -> tuple[list[Problem], list[Problem]]:
    """(errors, warnings) of every trusted flow, refined flow and view, for `backend`."""
    from funnelops.spec.refined_checks import inspect_refined

    errors, warnings = inspect_trusted(loaded)
    err, warn = inspect_refined(loaded, backend)
    errors += err + _views_in_dialect(loaded, backend)
    warnings += warn
    from funnelops.spec.notify_checks import notification_notes

    warnings += notification_notes(loaded, backend)
    return errors, warnings


def _exec(src: FlowSource) -> tuple[ModuleType | None, Problem | None]:
    """The flow module executed as the runtime loads it, or the located reason it cannot be."""
    spec = importlib.util.spec_from_file_location(f"funnelops_user_flows.validate.{src.name}", src.path)
    if spec is None or spec.loader is None:
        return None, Problem(str(src.path), None, f"trusted flow {src.name}", "cannot load the flow as a module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except (KeyboardInterrupt, MemoryError):
        raise
    except BaseException as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if Path(f.filename) == src.path]
        line = frames[-1].lineno if frames else getattr(exc, "lineno", None)
        text = f"{type(exc).__name__}: {exc}".strip()
        return None, Problem(str(src.path), line, f"trusted flow {src.name}",
                             f"loading the flow fails: {text}",
                             "a run imports the flow the same way; fix the module's top-level code or imports")
    return module, None


def inspect_trusted(loaded: LoadedProject) -> tuple[list[Problem], list[Problem]]:
    """Every trusted flow executed and its contract judged on the real values; warnings for a
    flow whose TARGET no external table reads (refined SQL cannot see it)."""
    from funnelops.flows.engine import activate, active

    errors, warnings = [], []
    c = ProblemCollector()
    trusted = loaded.spec.bucket_for("trusted")
    read = {e.prefix.strip("/") for e in loaded.spec.external_tables if trusted is None or e.bucket == trusted.name}
    before = active()
    activate("duckdb")
    try:
        for path in flow_checks.flow_paths(loaded.base_dir):
            src = flow_checks.read_flow(path, c)
            if src is None:
                continue
            module, problem = _exec(src)
            if problem is not None:
                errors.append(problem)
                continue
            assert module is not None
            values = {k: getattr(module, k) for k in (*REQUIRED, *OPTIONAL) if hasattr(module, k)}
            src.star = False  # executed: what is missing is missing
            for attr, message, hint in flow_checks.contract_problems(src, values):
                errors.append(Problem(str(path), src.line(attr), f"trusted flow {src.name}.{attr}", message, hint))
            errors += _transform_problem(src, values.get("transform"))
            target = values.get("TARGET")
            if isinstance(target, str) and target not in read:
                warnings.append(Problem(str(path), src.line("TARGET"), f"trusted flow {src.name}.TARGET",
                                        f"no external table of the project reads the trusted table '{target}' "
                                        f"(prefix {target}/): refined SQL cannot read what this flow writes",
                                        "add it to `external_tables:` if refined flows need it"))
    finally:
        activate(before)
    return c.problems + errors, warnings


def _transform_problem(src: FlowSource, fn: object) -> list[Problem]:
    """`transform` takes the raw DataFrame as its one required argument."""
    if not callable(fn):
        return []
    try:
        sig = inspect.signature(fn)
        sig.bind(object())
    except (TypeError, ValueError):
        return [Problem(str(src.path), src.line("transform"), f"trusted flow {src.name}.transform",
                        "transform must take one argument, the raw DataFrame: `def transform(raw):`")]
    return []


def _views_in_dialect(loaded: LoadedProject, backend: str) -> list[Problem]:
    """Each view's SQL as the backend's warehouse runs it: locally its DuckDB translation."""
    from funnelops.spec.sql_safety import problem_message
    from funnelops.spec.sqlrefs import SqlError, to_duckdb

    if backend != "local":
        return []  # BigQuery's dialect is what `load_project` parsed already
    out = []
    for i, v in enumerate(loaded.spec.views):
        sql = loaded.view_sql.get(v.address)
        if sql is None:
            continue
        try:
            to_duckdb(sql)
        except SqlError as exc:
            path = ("views", i, "query_file" if v.query_file else "query")
            out.append(Problem(str(loaded.path), loaded.line_of(path), f"views[{v.name}].query",
                               "the local warehouse (DuckDB) cannot run it: " + problem_message(exc, v.query_file)))
    return out
