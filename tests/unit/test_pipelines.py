"""The seed's two pipelines, as Azure DevOps YAML and GitHub Actions twins (issues 6 and 15).

What these tests hold the files in pipelines/ to:

- every file validates against the third-party schemas in ``../shared/schemas/`` (Azure's expects
  every scalar as a string, so Azure files load with PyYAML's BaseLoader; GitHub's needs YAML 1.2
  booleans, so ``on:`` stays a key);
- the Azure templates expand the way Azure expands them (a small compile-time expander for
  ``template:`` references and ``${{ parameters.x }}``), once per value of each runtime parameter,
  and the expanded pipelines validate too;
- the pipeline names, parameter values, stage names and job names are the seed's, exactly;
- every funnelops call in every script step is the expected one, and the real CLI parses it with
  a global ``--dry-run`` without touching anything (exit code 0);
- the step that runs funnelops turns exit codes 3 and 4 into a clear failed step.

Issue 15 (dev -> prod) added a stage "Plan" before the seed's stages, a reviewed `apply plan.json`
in place of `job create-infra`, the `environment` parameter and the choice of GCP authentication;
their structure is checked in test_pipelines_plan_apply.py.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PIPELINES = REPO / "pipelines"
AZURE = PIPELINES / "azure"
GITHUB = PIPELINES / "github"
WRAPPER = PIPELINES / "scripts" / "run-funnelops.sh"

# --------------------------------------------------------------------------------------------
# The seed, exactly (shared/seed/000_*.txt; README.md beside it restates it in English).
# --------------------------------------------------------------------------------------------
FUNNEL = "Datos_GCP_Funnel"
WORKFLOW = "Datos_GCP_Funnel_Workflow"
DATA_STAGES = ["IaC", "Initial data"]
SCHEDULERS = ["Día", "Mes", "Año", "Duplicado mes"]
STAGE_INFRA = "Data infrastructure"
STAGE_INIT = "Data initialization"
STAGE_WORKFLOW = "Workflow deployment"
JOB_CREATE = "GCP create infra"
JOB_RUN = "GCP run workflow template"
JOB_RERUN = "GCP re run workflow template"
# The seed does not name the workflow pipeline's job; this is ours.
JOB_FORCE = "GCP force scheduler"
# Ours too (issue 15): the stage and job that plan the create-infra for review before it applies.
STAGE_PLAN = "Plan"
JOB_PLAN = "GCP create infra plan"
ENVIRONMENTS = ["dev", "prod"]

# What runs for each parameter value: [(stage, [job, ...])], jobs in dependency order.
EXPECTED_STAGES = {
    (FUNNEL, "IaC"): [(STAGE_PLAN, [JOB_PLAN]), (STAGE_INFRA, [JOB_CREATE])],
    (FUNNEL, "Initial data"): [(STAGE_PLAN, [JOB_PLAN]), (STAGE_INIT, [JOB_RUN, JOB_CREATE, JOB_RERUN])],
    **{(WORKFLOW, s): [(STAGE_WORKFLOW, [JOB_FORCE])] for s in SCHEDULERS},
}

# The funnelops command lines each job runs (global options first, then the command). The
# create-infra of each dataStage is a saved plan (stage Plan) applied as reviewed; where the plan
# file lives depends on the CI system (the agent's folders are stood in for: see the finders below).
def global_options(env: str) -> list[str]:
    return ["--project", "projects/funnel/funnel.yaml", "--backend", "gcp", "--env", env, "--json"]


AZURE_PLAN_OUT = "/azp/Build.ArtifactStagingDirectory/plan/plan.json"
AZURE_PLAN_IN = "/azp/Pipeline.Workspace/plan/plan.json"
GITHUB_PLAN = "/runner/temp/plan/plan.json"


def expected_calls(name: str, value: str, env: str, plan_out: str, plan_in: str) -> list[list[str]]:
    plan = ["plan", "--stage", value, "--show-unchanged", "-out", plan_out]
    commands = {
        (FUNNEL, "IaC"): [plan, ["apply", plan_in]],
        (FUNNEL, "Initial data"): [plan, ["job", "run-workflow-templates"], ["apply", plan_in],
                                   ["job", "rerun-workflow-templates"]],
        **{(WORKFLOW, s): [["pipeline", "workflow", "--scheduler", s]] for s in SCHEDULERS},
    }[(name, value)]
    return [global_options(env) + c for c in commands]

AZURE_PIPELINES = {FUNNEL: AZURE / "datos-gcp-funnel.yml", WORKFLOW: AZURE / "datos-gcp-funnel-workflow.yml"}
GITHUB_PIPELINES = {FUNNEL: GITHUB / "datos-gcp-funnel.yml", WORKFLOW: GITHUB / "datos-gcp-funnel-workflow.yml"}
AZURE_FILES = sorted(AZURE.rglob("*.yml"))
GITHUB_FILES = sorted(GITHUB.rglob("*.yml"))


# --------------------------------------------------------------------------------------------
# Where the third-party schemas are: named by FUNNELOPS_SHARED_DIR, vendored in tests/third_party/
# (so a clone tests itself), or a shared/ folder beside the repository.
# --------------------------------------------------------------------------------------------
def _find_shared() -> Path | None:
    env = os.environ.get("FUNNELOPS_SHARED_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO / "tests" / "third_party"]
    candidates += [p / "shared" for p in (REPO, *REPO.parents)]
    for candidate in candidates:
        if (candidate / "schemas").is_dir():
            return candidate
    return None


SHARED = _find_shared()
needs_schemas = pytest.mark.skipif(
    SHARED is None,
    reason="shared/schemas not found beside the repository or in any parent of it, and "
    "FUNNELOPS_SHARED_DIR is not set: the third-party schemas are not available",
)


@functools.cache
def _schema(name: str) -> dict:
    assert SHARED is not None
    return json.loads((SHARED / "schemas" / name).read_text(encoding="utf-8"))


@functools.cache
def _validator(name: str, definition: str | None = None):
    import jsonschema

    schema = _schema(name)
    if definition is not None:
        # The same document, rooted at one of its definitions (e.g. stepsTemplate).
        schema = {k: v for k, v in schema.items() if k != "oneOf"}
        schema["allOf"] = [{"$ref": f"#/definitions/{definition}"}]
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def _assert_valid(doc: Any, schema: str, definition: str | None, what: str) -> None:
    import jsonschema

    errors = list(_validator(schema, definition).iter_errors(doc))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        path = "/".join(str(p) for p in best.absolute_path)
        pytest.fail(f"{what} does not validate against {schema}"
                    f"{' (' + definition + ')' if definition else ''}: at '{path}': {best.message[:500]}")


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------
def load_azure(path: Path) -> Any:
    """Every scalar a string, as Azure's schema expects."""
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=yaml.BaseLoader)


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false (so `on:` stays the string "on")."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_github(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=Yaml12Loader)


def test_yaml12_loader_keeps_on_as_a_key() -> None:
    doc = yaml.load("on: {workflow_dispatch: {}}\nyes: no\nx: true\ny: False\n", Loader=Yaml12Loader)
    assert doc == {"on": {"workflow_dispatch": {}}, "yes": "no", "x": True, "y": False}


# --------------------------------------------------------------------------------------------
# A compile-time expander for the subset of Azure template syntax the pipelines use:
# `- template: path` (with `parameters:`) in stage/job/step lists, and `${{ parameters.x }}`.
# Anything else written as a template expression fails loudly, so nothing is silently skipped.
# --------------------------------------------------------------------------------------------
EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
PARAM_REF = re.compile(r"parameters\.([A-Za-z_][A-Za-z0-9_]*)")


class ExpandError(AssertionError):
    pass


def _lookup(expr: str, ctx: dict[str, Any], where: str) -> Any:
    m = PARAM_REF.fullmatch(expr)
    if not m:
        raise ExpandError(f"{where}: unsupported template expression '${{{{ {expr} }}}}' "
                          "(extend the expander in tests/unit/test_pipelines.py)")
    if m.group(1) not in ctx:
        raise ExpandError(f"{where}: unknown parameter '{m.group(1)}' (known: {sorted(ctx)})")
    return ctx[m.group(1)]


def _substitute(value: str, ctx: dict[str, Any], where: str) -> Any:
    whole = EXPR.fullmatch(value.strip())
    if whole:  # a whole value keeps the parameter's type (e.g. a list for dependsOn)
        return _lookup(whole.group(1), ctx, where)

    def repl(m: re.Match) -> str:
        v = _lookup(m.group(1), ctx, where)
        if not isinstance(v, str):
            raise ExpandError(f"{where}: parameter inside a string is not a string: {v!r}")
        return v

    return EXPR.sub(repl, value)


def _check_parameter(decl: dict, value: Any, where: str) -> None:
    kind = decl.get("type", "string")
    if kind == "string" and not isinstance(value, str):
        raise ExpandError(f"{where}: parameter '{decl['name']}' is a string, got {value!r}")
    if kind == "number" and not (isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value)):
        raise ExpandError(f"{where}: parameter '{decl['name']}' is a number, got {value!r}")
    if "values" in decl and value not in decl["values"]:
        raise ExpandError(f"{where}: parameter '{decl['name']}' = {value!r} is not one of {decl['values']}")


def _bind(decls: list[dict], given: dict[str, Any], where: str) -> dict[str, Any]:
    names = [d["name"] for d in decls]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ExpandError(f"{where}: unexpected parameters {unknown} (declared: {names})")
    ctx: dict[str, Any] = {}
    for decl in decls:
        if decl["name"] in given:
            value = given[decl["name"]]
        elif "default" in decl:
            value = decl["default"]
        else:
            raise ExpandError(f"{where}: parameter '{decl['name']}' has no value and no default")
        _check_parameter(decl, value, where)
        ctx[decl["name"]] = value
    return ctx


TEMPLATE_BODIES = ("stages", "jobs", "steps")


def _expand_template(ref: dict, ctx: dict[str, Any], base: Path, stack: tuple[Path, ...]) -> list:
    if set(ref) - {"template", "parameters"}:
        raise ExpandError(f"{base}: a template reference has extra keys {sorted(set(ref) - {'template', 'parameters'})}")
    rel = _substitute(ref["template"], ctx, str(base))
    path = (base / rel).resolve()
    if not path.is_file():
        raise ExpandError(f"{base}: template '{rel}' does not exist ({path})")
    if path in stack:
        raise ExpandError(f"template cycle: {' -> '.join(map(str, (*stack, path)))}")
    given = _expand(ref.get("parameters", {}), ctx, base, stack)
    doc = load_azure(path)
    inner = _bind(doc.get("parameters", []), given, str(path))
    bodies = [k for k in TEMPLATE_BODIES if k in doc]
    if len(bodies) != 1:
        raise ExpandError(f"{path}: a template has exactly one of {TEMPLATE_BODIES}, found {bodies}")
    return _expand(doc[bodies[0]], inner, path.parent, (*stack, path))


def _expand(node: Any, ctx: dict[str, Any], base: Path, stack: tuple[Path, ...]) -> Any:
    where = str(stack[-1] if stack else base)
    if isinstance(node, str):
        return _substitute(node, ctx, where)
    if isinstance(node, list):
        out: list = []
        for item in node:
            if isinstance(item, dict) and "template" in item:
                out.extend(_expand_template(item, ctx, base, stack))
            else:
                out.append(_expand(item, ctx, base, stack))
        return out
    if isinstance(node, dict):
        for key in node:
            if EXPR.search(key):
                raise ExpandError(f"{where}: template expressions as keys (insertions) are not supported: {key}")
        return {k: _expand(v, ctx, base, stack) for k, v in node.items()}
    return node


def runtime_values(doc: dict) -> list[dict[str, str]]:
    """One combination per value of each runtime parameter that lists its values."""
    decls = doc.get("parameters", [])
    choices = [[(d["name"], v) for v in d["values"]] if "values" in d else [(d["name"], d["default"])]
               for d in decls]
    return [dict(combo) for combo in itertools.product(*choices)]


def expand_pipeline(path: Path, values: dict[str, str]) -> dict:
    doc = load_azure(path)
    ctx = _bind(doc.get("parameters", []), values, str(path))
    out = {}
    for key, value in doc.items():
        out[key] = value if key == "parameters" else _expand(value, ctx, path.parent, (path.resolve(),))
    return out


def _azure_condition(cond: str | None) -> bool:
    """The conditions the pipelines use: none/succeeded(), eq('a', 'b') (case-insensitive, as Azure),
    and and(succeeded(), <one of those>)."""
    if cond is None or cond.strip() == "succeeded()":
        return True
    both = re.fullmatch(r"\s*and\(\s*succeeded\(\)\s*,(.*)\)\s*", cond)
    if both:
        return _azure_condition(both.group(1))
    m = re.fullmatch(r"\s*eq\(\s*'([^']*)'\s*,\s*'([^']*)'\s*\)\s*", cond)
    if not m:
        raise ExpandError(f"unsupported condition {cond!r} (extend _azure_condition)")
    return m.group(1).casefold() == m.group(2).casefold()


AZURE_CASES = [(name, v) for name, path in AZURE_PIPELINES.items() for v in runtime_values(load_azure(path))]


def _case_id(case: tuple[str, dict[str, str]]) -> str:
    return f"{case[0]}-{'-'.join(case[1].values())}"


@functools.cache
def _expanded(name: str, values_key: tuple[tuple[str, str], ...]) -> dict:
    return expand_pipeline(AZURE_PIPELINES[name], dict(values_key))


def expanded(name: str, values: dict[str, str]) -> dict:
    return _expanded(name, tuple(sorted(values.items())))


def azure_active(doc: dict) -> list[tuple[dict, list[dict]]]:
    return [(stage, stage["jobs"]) for stage in doc["stages"] if _azure_condition(stage.get("condition"))]


def job_id(job: dict) -> str:
    """A job's id: `job:` for a job, `deployment:` for a deployment job."""
    return job.get("job") or job["deployment"]


def job_steps(job: dict) -> list[dict]:
    """A job's steps; a deployment job's are those of its runOnce strategy's deploy hook."""
    if "deployment" in job:
        return job["strategy"]["runOnce"]["deploy"]["steps"]
    return job.get("steps", [])


# --------------------------------------------------------------------------------------------
# Finding the funnelops calls in a script: simple commands whose program is `funnelops`, or
# `bash pipelines/scripts/run-funnelops.sh OUTPUT funnelops ...`.
# --------------------------------------------------------------------------------------------
SHELL_OPERATORS = {"|", "||", "&&", ";", "&", "|&", ";;", "(", ")"}
HEREDOC = re.compile(r"<<-?\s*(['\"]?)([A-Za-z_][A-Za-z0-9_]*)\1")


def _shell_lines(script: str) -> list[str]:
    lines, heredoc_end = [], None
    for line in script.replace("\\\n", " ").splitlines():
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        m = HEREDOC.search(line)
        if m:
            heredoc_end = m.group(2)
        lines.append(line)
    return lines


def funnelops_calls(script: str, env: dict[str, str] | None = None, where: str = "") -> list[list[str]]:
    env = env or {}
    calls = []
    for line in _shell_lines(script):
        if not re.search(r"(?<![\w./-])funnelops(?![\w.-])", line) or line.lstrip().startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            tokens = list(lexer)
        except ValueError as exc:
            raise AssertionError(f"{where}: cannot parse the shell line {line!r}: {exc}") from exc
        commands, current = [], []
        for tok in tokens:
            if tok in SHELL_OPERATORS or (set(tok) <= set("<>&|;0123456789") and any(c in tok for c in "<>")):
                commands.append(current)
                current = []
                if any(c in tok for c in "<>"):  # a redirection: its target is not an argument
                    current = [None]
            elif current == [None]:
                current = []
            else:
                current.append(tok)
        commands.append(current)
        for argv in commands:
            argv = [a for a in argv if a is not None]
            if not argv:
                continue
            if argv[0] == "funnelops":
                args = argv[1:]
            elif len(argv) >= 4 and argv[0] in ("bash", "sh") and argv[1].endswith("run-funnelops.sh"):
                assert argv[3] == "funnelops", f"{where}: run-funnelops.sh runs {argv[3]!r}, not funnelops"
                args = argv[4:]
            elif argv[:3] == ["python", "-m", "pip"] or argv[0] == "echo":
                continue
            elif "funnelops" in argv:
                raise AssertionError(f"{where}: an unrecognised way of calling funnelops: {argv}")
            else:
                continue

            def resolve(arg: str) -> str:
                return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                              lambda m: env.get(m.group(1), m.group(0)), arg)

            args = [resolve(a) for a in args]
            unresolved = [a for a in args if "$" in a]
            assert not unresolved, f"{where}: funnelops arguments left unresolved: {unresolved} in {args}"
            calls.append(args)
    return calls


def azure_scripts(job: dict) -> list[str]:
    return [s.get("bash") or s.get("script") for s in job_steps(job) if "bash" in s or "script" in s]


AZURE_MACRO = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.]*)\)")


def azure_macros(script: str) -> str:
    """Azure replaces $(Name) macros before the script runs; the agent's folders are stood in for
    by /azp/<Name> (e.g. $(Pipeline.Workspace) -> /azp/Pipeline.Workspace)."""
    return AZURE_MACRO.sub(lambda m: f"/azp/{m.group(1)}", script)


def azure_calls(name: str, values: dict[str, str]) -> list[list[str]]:
    calls = []
    for _stage, jobs in azure_active(expanded(name, values)):
        for job in jobs:
            for script in azure_scripts(job):
                calls += funnelops_calls(azure_macros(script),
                                         where=f"azure {name} {values} {job.get('displayName')}")
    return calls


# --- GitHub ----------------------------------------------------------------------------------
GH_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


def _gh_substitute(text: str, inputs: dict[str, str], where: str) -> str:
    def repl(m: re.Match) -> str:
        if m.group(1).startswith(("github.", "runner.", "vars.", "toJSON(vars)")):
            return m.group(0)  # the run's context (github.actor, runner.temp, vars): known only at run time
        ref = re.fullmatch(r"(?:inputs|github\.event\.inputs)\.([A-Za-z_][A-Za-z0-9_-]*)", m.group(1))
        if not ref:
            raise AssertionError(f"{where}: unsupported expression in a funnelops step: {m.group(0)}")
        return inputs[ref.group(1)]

    return GH_EXPR.sub(repl, text)


def _gh_if(cond: Any, inputs: dict[str, str]) -> bool:
    if cond is None:
        return True
    m = re.fullmatch(r"\s*(?:\$\{\{\s*)?inputs\.([A-Za-z_][A-Za-z0-9_-]*)\s*==\s*'([^']*)'\s*(?:\}\}\s*)?", str(cond))
    if not m:
        raise AssertionError(f"unsupported job condition {cond!r} (extend _gh_if)")
    return inputs[m.group(1)] == m.group(2)


def github_inputs(doc: dict) -> list[dict[str, str]]:
    inputs = doc["on"]["workflow_dispatch"]["inputs"]
    return [dict(c) for c in itertools.product(*[[(k, o) for o in v["options"]] for k, v in inputs.items()])]


def github_active_jobs(doc: dict, inputs: dict[str, str]) -> list[tuple[str, dict]]:
    jobs = [(jid, job) for jid, job in doc["jobs"].items() if _gh_if(job.get("if"), inputs)]
    active = {jid for jid, _ in jobs}
    for jid, job in jobs:  # a job whose dependency is skipped is skipped too
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        assert set(needs) <= active, f"{jid} needs {needs}, which do not run for {inputs}"
    return jobs


# The runner's own variables the steps use, stood in for.
RUNNER_ENV = {"RUNNER_TEMP": "/runner/temp"}


def github_calls(name: str, inputs: dict[str, str]) -> list[list[str]]:
    doc = load_github(GITHUB_PIPELINES[name])
    calls = []
    for jid, job in github_active_jobs(doc, inputs):
        for step in job["steps"]:
            if "run" not in step:
                continue
            where = f"github {name} {inputs} {jid}"
            env = dict(RUNNER_ENV)
            env.update({k: _gh_substitute(str(v), inputs, where)
                        for scope in (doc.get("env", {}), job.get("env", {}), step.get("env", {}))
                        for k, v in scope.items()})
            calls += funnelops_calls(_gh_substitute(step["run"], inputs, where), env, where)
    return calls


GITHUB_CASES = [(name, v) for name, path in GITHUB_PIPELINES.items() for v in github_inputs(load_github(path))]


# ============================================================================================
# 1. Schemas
# ============================================================================================
def test_the_pipeline_files_exist() -> None:
    for path in (*AZURE_PIPELINES.values(), *GITHUB_PIPELINES.values(), WRAPPER):
        assert path.is_file(), path
    assert any(p.parent.parent.name == "templates" for p in AZURE_FILES), "no Azure templates"


@needs_schemas
@pytest.mark.parametrize("path", AZURE_FILES, ids=lambda p: str(p.relative_to(AZURE)))
def test_azure_file_validates_against_the_schema(path: Path) -> None:
    doc = load_azure(path)
    _assert_valid(doc, "azure-pipelines.schema.json", None, str(path.relative_to(REPO)))
    if "templates" in path.relative_to(AZURE).parts:
        kind = next(k for k in TEMPLATE_BODIES if k in doc)
        _assert_valid(doc, "azure-pipelines.schema.json", f"{kind}Template", str(path.relative_to(REPO)))


@needs_schemas
@pytest.mark.parametrize("case", AZURE_CASES, ids=_case_id)
def test_expanded_azure_pipeline_validates_against_the_schema(case) -> None:
    name, values = case
    _assert_valid(expanded(name, values), "azure-pipelines.schema.json", None, f"{name} expanded for {values}")


@needs_schemas
@pytest.mark.parametrize("path", GITHUB_FILES, ids=lambda p: p.name)
def test_github_workflow_validates_against_the_schema(path: Path) -> None:
    doc = load_github(path)
    assert "on" in doc and True not in doc, "`on:` must stay a key (YAML 1.2 booleans)"
    _assert_valid(doc, "github-workflow.schema.json", None, str(path.relative_to(REPO)))


def test_every_azure_template_is_used() -> None:
    used: set[Path] = set()

    def walk(node: Any, base: Path) -> None:
        if isinstance(node, dict):
            if "template" in node:
                # a path chosen by a parameter (auth-${{ parameters.gcpAuth }}.yml) uses every file
                # it can name; test_pipelines_plan_apply.py checks each value names one
                pattern = EXPR.sub("*", node["template"])
                targets = sorted(base.glob(pattern)) if pattern != node["template"] else [base / pattern]
                assert targets, f"{base}: no template matches {node['template']}"
                for target in (t.resolve() for t in targets):
                    if target not in used:
                        used.add(target)
                        walk(load_azure(target), target.parent)
            for v in node.values():
                walk(v, base)
        elif isinstance(node, list):
            for v in node:
                walk(v, base)

    for path in AZURE_PIPELINES.values():
        walk(load_azure(path), path.parent)
    templates = {p.resolve() for p in AZURE_FILES if "templates" in p.parts}
    assert templates - used == set(), "templates nobody uses"


# ============================================================================================
# 2. The seed's names, exactly
# ============================================================================================
def _seed_text() -> str | None:
    files = sorted((REPO / "docs" / "seed").glob("000_*.txt"))  # the seed ships with the repo
    if not files and SHARED is not None:
        files = sorted((SHARED / "seed").glob("000_*.txt"))
    return files[0].read_text(encoding="utf-8") if files else None


@pytest.mark.skipif(_seed_text() is None, reason="shared/seed/000_*.txt not found")
def test_the_expected_names_are_the_seeds() -> None:
    text = unicodedata.normalize("NFC", _seed_text() or "")
    for quoted in (FUNNEL, WORKFLOW, STAGE_INFRA, STAGE_INIT, STAGE_WORKFLOW, JOB_CREATE, JOB_RUN, JOB_RERUN,
                   "dataStage", "Select a Scheduler", *DATA_STAGES):
        assert f"'{quoted}'" in text or f'"{quoted}"' in text, quoted
    assert f"({', '.join(SCHEDULERS)})" in text


def _all_strings(node: Any):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _all_strings(k)
            yield from _all_strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _all_strings(v)


@pytest.mark.parametrize("path", [*AZURE_FILES, *GITHUB_FILES], ids=lambda p: str(p.relative_to(PIPELINES)))
def test_text_is_nfc(path: Path) -> None:
    """'Día' must be the same code points as in funnel.yaml and the seed."""
    text = path.read_text(encoding="utf-8")
    assert text == unicodedata.normalize("NFC", text)


AZURE_ENV_PARAMETERS = [
    {"name": "environment", "type": "string", "default": "dev", "values": ENVIRONMENTS},
    {"name": "gcpAuth", "type": "string", "default": "wif", "values": ["wif", "keyfile"]},
]


def _without_display_names(params: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "displayName"} for p in params]


def test_azure_funnel_pipeline_names_and_parameter() -> None:
    doc = load_azure(AZURE_PIPELINES[FUNNEL])
    assert doc["name"].split()[0] == FUNNEL
    # The seed's parameter comes first, as it was, now with its default stated (issue 15).
    assert doc["parameters"][0] == {"name": "dataStage", "displayName": "dataStage", "type": "string",
                                    "default": "IaC", "values": DATA_STAGES}
    assert _without_display_names(doc["parameters"][1:]) == AZURE_ENV_PARAMETERS
    assert doc["trigger"] == "none" and doc["pr"] == "none"
    assert {"group": "funnel-${{ parameters.environment }}"} in doc["variables"]


def test_azure_workflow_pipeline_names_and_parameter() -> None:
    doc = load_azure(AZURE_PIPELINES[WORKFLOW])
    assert doc["name"].split()[0] == WORKFLOW
    param = doc["parameters"][0]
    assert param["displayName"] == "Select a Scheduler"
    assert " " not in param["name"]
    assert param["type"] == "string" and param["values"] == SCHEDULERS and param["default"] == "Día"
    assert _without_display_names(doc["parameters"][1:]) == AZURE_ENV_PARAMETERS
    assert doc["trigger"] == "none" and doc["pr"] == "none"
    assert {"group": "funnel-${{ parameters.environment }}"} in doc["variables"]


def test_azure_runtime_values_cover_the_seed() -> None:
    extra = [{"environment": e, "gcpAuth": a} for e in ENVIRONMENTS for a in ("wif", "keyfile")]
    assert sorted(AZURE_CASES, key=str) == sorted(
        [(FUNNEL, {"dataStage": v, **x}) for v in DATA_STAGES for x in extra]
        + [(WORKFLOW, {"scheduler": s, **x}) for s in SCHEDULERS for x in extra],
        key=str)


@pytest.mark.parametrize("case", AZURE_CASES, ids=_case_id)
def test_azure_stages_and_jobs_match_the_seed(case) -> None:
    name, values = case
    doc = expanded(name, values)
    active = azure_active(doc)
    got = [(stage["displayName"], [job["displayName"] for job in jobs]) for stage, jobs in active]
    assert got == EXPECTED_STAGES[(name, values[next(iter(values))])]
    # Every stage of the file is one of the seed's (or Plan), and the conditions are exclusive.
    assert {s["displayName"] for s in doc["stages"]} <= {STAGE_PLAN, STAGE_INFRA, STAGE_INIT, STAGE_WORKFLOW}
    for stage, jobs in active:
        ids = [job_id(job) for job in jobs]
        assert len(set(ids)) == len(ids)
        # each job depends on the previous one, the first on nothing
        for i, job in enumerate(jobs):
            deps = job.get("dependsOn", [])
            deps = [deps] if isinstance(deps, str) else deps
            assert deps == ([] if i == 0 else [ids[i - 1]]), (job["displayName"], deps)
        # The seed's stages do not wait for one another (with only one of them active, a skipped
        # stage must not hold the other back); they wait for the plan only.
        assert stage.get("dependsOn") == ([] if stage["displayName"] in (STAGE_PLAN, STAGE_WORKFLOW) else ["plan"])


@pytest.mark.parametrize("case", GITHUB_CASES, ids=_case_id)
def test_github_jobs_match_the_seed(case) -> None:
    name, inputs = case
    doc = load_github(GITHUB_PIPELINES[name])
    assert doc["name"] == name
    jobs = github_active_jobs(doc, inputs)
    stages = EXPECTED_STAGES[(name, next(iter(inputs.values())))]
    assert [job["name"] for _, job in jobs] == [j for _, stage_jobs in stages for j in stage_jobs]
    for i, (jid, job) in enumerate(jobs):
        stage = next(s for s, stage_jobs in stages if job["name"] in stage_jobs)
        if stage == STAGE_PLAN:
            assert jid == "plan"
        else:
            assert jid.startswith(stage.lower().replace(" ", "-") + "-"), (jid, stage)
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        assert needs == ([] if i == 0 else [jobs[i - 1][0]])


def test_github_inputs_match_the_seed() -> None:
    funnel = load_github(GITHUB_PIPELINES[FUNNEL])["on"]["workflow_dispatch"]["inputs"]
    assert list(funnel) == ["dataStage", "environment"]
    assert funnel["dataStage"]["type"] == "choice" and funnel["dataStage"]["options"] == DATA_STAGES
    assert funnel["dataStage"]["required"] is True and funnel["dataStage"]["default"] == "IaC"
    workflow = load_github(GITHUB_PIPELINES[WORKFLOW])["on"]["workflow_dispatch"]["inputs"]
    assert list(workflow) == ["scheduler", "environment"]
    assert workflow["scheduler"]["description"] == "Select a Scheduler"
    assert workflow["scheduler"]["type"] == "choice" and workflow["scheduler"]["options"] == SCHEDULERS
    assert workflow["scheduler"]["required"] is True and workflow["scheduler"]["default"] == "Día"
    for inputs in (funnel, workflow):
        env = inputs["environment"]
        assert env["type"] == "choice" and env["options"] == ENVIRONMENTS and env["default"] == "dev"


# ============================================================================================
# 3. Guards, credentials, artifacts
# ============================================================================================
def test_azure_second_guard_is_sequential_locking() -> None:
    for path in AZURE_PIPELINES.values():
        assert load_azure(path).get("lockBehavior") == "sequential", path


def test_github_second_guard_is_concurrency() -> None:
    funnel = load_github(GITHUB_PIPELINES[FUNNEL])["concurrency"]
    workflow = load_github(GITHUB_PIPELINES[WORKFLOW])["concurrency"]
    assert funnel["cancel-in-progress"] is False and workflow["cancel-in-progress"] is False
    assert "inputs.scheduler" in workflow["group"], "one group per scheduler"
    assert "inputs.environment" in funnel["group"] and "inputs.environment" in workflow["group"]
    assert funnel["group"] != workflow["group"]


@pytest.mark.parametrize("case", AZURE_CASES, ids=_case_id)
def test_azure_jobs_set_up_credentials_and_publish_output(case) -> None:
    name, values = case
    for _, jobs in azure_active(expanded(name, values)):
        for job in jobs:
            steps = job_steps(job)
            tasks = [s.get("task") for s in steps]
            assert "UsePythonVersion@0" in tasks
            runs = [i for i, s in enumerate(steps) if funnelops_calls(azure_macros(s.get("bash", "")))]
            assert len(runs) == 1, job["displayName"]
            run = steps[runs[0]]
            # wif (the default): the credential configuration is written before funnelops runs;
            # keyfile: the secure file is downloaded before it. Either leaves its path in
            # GCP_CREDENTIALS_FILE, never in a script line.
            if values["gcpAuth"] == "keyfile":
                assert "DownloadSecureFile@1" in tasks and tasks.index("DownloadSecureFile@1") < runs[0]
            else:
                assert "DownloadSecureFile@1" not in tasks
                wif = [i for i, s in enumerate(steps) if "azure-devops-oidc.py config" in s.get("bash", "")]
                assert wif and wif[0] < runs[0], job["displayName"]
            assert run["env"]["GOOGLE_APPLICATION_CREDENTIALS"] == "$(GCP_CREDENTIALS_FILE)"
            publish = [s for s in steps[runs[0] + 1:] if s.get("task") == "PublishPipelineArtifact@1"]
            assert publish and "always()" in publish[0]["condition"]
            # The key's path only ever reaches the process environment, never a script line.
            for step in steps:
                for key in ("bash", "script"):
                    assert "secureFilePath" not in step.get(key, ""), step.get("displayName")
                    assert "set -x" not in step.get(key, "")


@pytest.mark.parametrize("name", list(GITHUB_PIPELINES))
def test_github_jobs_use_wif_and_upload_output(name: str) -> None:
    doc = load_github(GITHUB_PIPELINES[name])
    assert doc["permissions"] == {"contents": "read", "id-token": "write"}
    for jid, job in doc["jobs"].items():
        uses = [s.get("uses", "") for s in job["steps"]]
        auth = [s for s in job["steps"] if s.get("uses", "") == "google-github-actions/auth@v3"]
        assert len(auth) == 1 and "workload_identity_provider" in auth[0]["with"], jid
        assert "credentials_json" not in auth[0]["with"]
        # the funnelops output is uploaded also when the command failed (the plan artifact is not)
        upload = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")
                  and s["with"]["name"].startswith("funnelops-")]
        assert upload and upload[0]["if"].startswith("always()"), jid
        assert any(u.startswith("actions/setup-python@") for u in uses)
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), f"{jid}: pass inputs through env, not into the script"


# ============================================================================================
# 4. The funnelops calls
# ============================================================================================
@pytest.mark.parametrize("case", AZURE_CASES, ids=_case_id)
def test_azure_funnelops_calls(case) -> None:
    name, values = case
    expected = expected_calls(name, next(iter(values.values())), values["environment"],
                              AZURE_PLAN_OUT, AZURE_PLAN_IN)
    assert azure_calls(name, values) == expected


@pytest.mark.parametrize("case", GITHUB_CASES, ids=_case_id)
def test_github_funnelops_calls(case) -> None:
    name, inputs = case
    expected = expected_calls(name, next(iter(inputs.values())), inputs["environment"], GITHUB_PLAN, GITHUB_PLAN)
    assert github_calls(name, inputs) == expected


def test_call_finder_understands_the_forms_it_meets() -> None:
    script = (
        "set -e\n"
        "python -m pip show funnelops | head -n 2\n"
        "python - x <<'PY'\nprint(\"don't funnelops me\")\nPY\n"
        "funnelops --json status > out.json && echo done\n"
        "bash pipelines/scripts/run-funnelops.sh \"$(Build.ArtifactStagingDirectory)/o.json\" \\\n"
        "  funnelops --json job create-infra --stage \"Initial data\"\n"
        "bash pipelines/scripts/run-funnelops.sh \"$RUNNER_TEMP/o.json\" funnelops pipeline workflow --scheduler \"$S\"\n"
    )
    assert funnelops_calls(script, {"S": "Duplicado mes"}) == [
        ["--json", "status"],
        ["--json", "job", "create-infra", "--stage", "Initial data"],
        ["pipeline", "workflow", "--scheduler", "Duplicado mes"],
    ]
    with pytest.raises(AssertionError):
        funnelops_calls("exec funnelops status\n")
    with pytest.raises(AssertionError):
        funnelops_calls("funnelops pipeline workflow --scheduler \"$UNSET\"\n")


def _all_calls() -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []
    for name, values in AZURE_CASES:
        calls += [tuple(c) for c in azure_calls(name, values)]
    for name, inputs in GITHUB_CASES:
        calls += [tuple(c) for c in github_calls(name, inputs)]
    return sorted(set(calls))


def _funnelops_command() -> list[str]:
    script = Path(sys.executable).parent / ("funnelops.exe" if os.name == "nt" else "funnelops")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "funnelops"]


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def _dry_run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update({
        "GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "no-such-credentials.json"),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),
        "PYTHONIOENCODING": "utf-8",
    })
    cmd = [*_funnelops_command(), "--home", str(tmp_path / "home"), "--dry-run", *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, encoding="utf-8", timeout=300)


def _reviewed_plan(args: tuple[str, ...], tmp_path: Path) -> list[str]:
    """`apply PLAN` reads PLAN even in a dry run: stand in for the artifact the plan stage
    published with a saved plan (written by funnelops' own code) for the project and backend the
    same global options select, and point the call at it."""
    from funnelops.plan.model import Plan
    from funnelops.plan.saved import saved_plan_document, write_saved_plan

    i = args.index("apply")
    probe = _dry_run([*args[:i], "job", "create-infra", "--stage", "IaC"], tmp_path)
    assert probe.returncode == 0, probe.stderr[-2000:]
    project = json.loads(probe.stdout)["project"]
    plan_file = tmp_path / "artifact" / "plan" / "plan.json"
    plan_file.parent.mkdir(parents=True)
    env = args[args.index("--env") + 1] if "--env" in args else None
    write_saved_plan(plan_file, saved_plan_document(Plan(stage="iac", backend="gcp"), project, env=env))
    return [*args[:i], "apply", str(plan_file), *args[i + 2:]]


@pytest.mark.parametrize("args", _all_calls(), ids=lambda a: " ".join(a))
def test_the_cli_accepts_every_pipeline_call_in_dry_run(args: tuple[str, ...], tmp_path: Path) -> None:
    """Each call the pipelines make, with a global --dry-run (and a throw-away --home) first:
    the real CLI validates the arguments and the project, says what it would do, exits 0, and
    touches nothing (no credentials are reachable, nothing lands in its home)."""
    home = tmp_path / "home"
    call = _reviewed_plan(args, tmp_path) if "apply" in args else list(args)
    proc = _dry_run(call, tmp_path)
    cmd = ["funnelops", "--home", str(home), "--dry-run", *call]
    assert proc.returncode == 0, (
        f"{shlex.join(cmd)}\nexit code {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n"
        f"--- stderr\n{proc.stderr[-3000:]}")
    assert _files_under(home) == [], "a --dry-run wrote files"
    if "--json" in args:
        json.loads(proc.stdout)  # --json: machine-readable stdout


# ============================================================================================
# 5. The step that runs funnelops: exit codes 3 and 4 as clear failed steps
# ============================================================================================
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")


def _wrap(tmp_path: Path, code: int, flavour: dict[str, str], stdout: str = "{}") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("TF_BUILD", "GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")}
    env.update(flavour)
    fake = f"printf '%s\\n' {shlex.quote(stdout)}; echo progress >&2; exit {code}"
    return subprocess.run(["bash", str(WRAPPER), str(tmp_path / "out" / "result.json"), "bash", "-c", fake],
                          env=env, capture_output=True, text=True, timeout=60)


@needs_bash
@pytest.mark.parametrize("code, reason", [
    (3, "a run of that workflow is in progress"),
    (4, "an earlier lifecycle stage must run first"),
    (2, "rejected the arguments or the project definition"),
    (1, "exit code 1"),
])
def test_wrapper_reports_azure_refusals(tmp_path: Path, code: int, reason: str) -> None:
    proc = _wrap(tmp_path, code, {"TF_BUILD": "True"})
    assert proc.returncode == code
    errors = [line for line in proc.stdout.splitlines() if line.startswith("##vso[task.logissue type=error]")]
    assert len(errors) == 1 and reason in errors[0], proc.stdout
    assert (tmp_path / "out" / "result.json").read_text().strip() == "{}"


@needs_bash
def test_wrapper_reports_github_refusals_with_the_cli_detail(tmp_path: Path) -> None:
    detail = "run r-42 of funnel-dia, started 2024-05-01T06:00 by scheduler"
    summary = tmp_path / "summary.md"
    proc = _wrap(tmp_path, 3, {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
                 stdout=json.dumps({"ok": False, "error": {"message": detail}}))
    assert proc.returncode == 3
    (error,) = [line for line in proc.stdout.splitlines() if line.startswith("::error")]
    assert error.startswith("::error title=Refused::a run of that workflow is in progress")
    assert detail in error
    assert "in progress" in summary.read_text()


@needs_bash
def test_wrapper_success_passes_output_through(tmp_path: Path) -> None:
    proc = _wrap(tmp_path, 0, {"TF_BUILD": "True"}, stdout='{"ok": true}')
    assert proc.returncode == 0
    assert "##vso[task.logissue" not in proc.stdout
    assert json.loads((tmp_path / "out" / "result.json").read_text()) == {"ok": True}


# ============================================================================================
# 6. The expander refuses what Azure would refuse (so the tests above cannot pass by accident)
# ============================================================================================
def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("caller, message", [
    ("  - template: t.yml\n    parameters: {stage: Other}\n", "is not one of"),
    ("  - template: t.yml\n    parameters: {stage: IaC, extra: x}\n", "unexpected parameters"),
    ("  - template: missing.yml\n", "does not exist"),
    ("  - template: t.yml\n", "has no value and no default"),
])
def test_expander_refuses_bad_template_calls(tmp_path: Path, caller: str, message: str) -> None:
    _write(tmp_path / "t.yml", "parameters:\n  - name: stage\n    type: string\n    values: [IaC]\n"
                               "stages:\n  - stage: s\n    displayName: ${{ parameters.stage }}\n    jobs: []\n")
    pipeline = _write(tmp_path / "p.yml", "stages:\n" + caller)
    with pytest.raises(ExpandError, match=message):
        expand_pipeline(pipeline, {})


def test_expander_refuses_insertions_and_unknown_expressions(tmp_path: Path) -> None:
    insertion = _write(tmp_path / "a.yml", "stages:\n  - ${{ if true }}:\n    - stage: s\n")
    with pytest.raises(ExpandError, match="insertions"):
        expand_pipeline(insertion, {})
    unknown = _write(tmp_path / "b.yml", "stages:\n  - stage: s\n    displayName: ${{ variables.x }}\n")
    with pytest.raises(ExpandError, match="unsupported template expression"):
        expand_pipeline(unknown, {})
