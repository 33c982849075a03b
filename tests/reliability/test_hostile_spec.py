"""Hostile project definitions: each must end in a located refusal, fast, never a hang or a crash.

Covers issue #9 items 11 (`main` confinement), 12 (reserved variable names, runtime flags last),
14 (alias bombs, huge files, devices and FIFOs), 17 (rich markup in `status`, a 5,001-digit
integer, oversized variables, the home's permissions).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from funnelops.runs import coordinator
from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project

pytestmark = pytest.mark.reliability

P = "project:\n  id: demo-project\n"
WF = "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n      - step_id: step-one\n"


def write(tmp: Path, text: str, name: str = "funnel.yaml") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list:
    with pytest.raises(ProjectError) as err:
        load_project(path)
    return err.value.problems


def the_problem(path: Path, field: str, says: str, line: int | None = None):
    probs = problems_of(path)
    hits = [p for p in probs if field in p.field and says.lower() in (p.message + " " + (p.hint or "")).lower()]
    assert hits, "\n".join(p.render() for p in probs)
    if line is not None:
        assert hits[0].line == line, hits[0].render()
    return hits[0]


# -- 14: alias bombs, file size, file type ----------------------------------------------------------

def billion_laughs(levels: int) -> str:
    lines = [P.rstrip("\n"), 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [7, 9])
def test_alias_bomb_is_refused_fast(tmp_path, levels):
    path = write(tmp_path, billion_laughs(levels))
    t0 = time.monotonic()
    problem = the_problem(path, "", "expands to more than 100,000 values")
    assert time.monotonic() - t0 < 2
    assert problem.line is not None and problem.line > 2


def test_a_few_aliases_still_work(tmp_path):
    path = write(tmp_path, P + "variables:\n  region: &r us-east1\n  other_region: *r\n")
    assert load_project(path).spec.variables == {"region": "us-east1", "other_region": "us-east1"}


def test_dev_zero_is_refused_not_read(tmp_path):
    the_problem(Path("/dev/zero"), "(file)", "is a device, not a regular file")


def no_hang(fn, *fifos: Path, timeout: float = 5):
    """fn() in a thread; if it blocks (reading a FIFO), unblock it by opening the FIFOs and fail."""
    out: list = []
    errors: list = []

    def target():
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        for fifo in fifos:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if t.is_alive() else None
            if fd is not None:
                os.close(fd)
        pytest.fail("reading a FIFO hung")
    if errors:
        raise errors[0]
    return out[0]


def test_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "funnel.yaml"
    os.mkfifo(fifo)
    problems = no_hang(lambda: problems_of(fifo), fifo)
    assert "FIFO" in problems[0].message


def test_directory_is_refused(tmp_path):
    the_problem(tmp_path, "(file)", "is a directory")


def test_oversized_project_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "funnel.yaml"
    with open(path, "wb") as fh:
        fh.write(P.encode())
        fh.truncate(6 * 1024 * 1024)  # sparse: a 6 MB file without writing 6 MB
    the_problem(path, "(file)", "limited to 5,242,880 bytes")


def test_schema_file_that_is_a_fifo_or_huge_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    with open(tmp_path / "huge.json", "wb") as fh:
        fh.truncate(6 * 1024 * 1024)
    path = write(tmp_path, P + "datasets: [{id: ds}]\ntables:\n"
                 "  - {dataset: ds, name: t1, schema_file: pipe.json}\n"
                 "  - {dataset: ds, name: t2, schema_file: huge.json}\n")
    no_hang(lambda: the_problem(path, "tables[t1].schema_file", "FIFO", line=5), tmp_path / "pipe.json")
    the_problem(path, "tables[t2].schema_file", "limited to", line=6)


def test_view_query_file_that_is_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "v.sql")
    path = write(tmp_path, P + "datasets: [{id: ds}]\nviews:\n  - {dataset: ds, name: v, query_file: v.sql}\n")
    no_hang(lambda: the_problem(path, "views[v].query_file", "FIFO", line=5), tmp_path / "v.sql")


def test_refined_sql_that_is_a_fifo_is_refused(tmp_path):
    from funnelops.flows.registry import FlowDefinitionError, load_refined

    (tmp_path / "sql" / "refined").mkdir(parents=True)
    os.mkfifo(tmp_path / "sql" / "refined" / "f.sql")
    with pytest.raises(FlowDefinitionError, match="FIFO"):
        no_hang(lambda: load_refined(tmp_path, "f"), tmp_path / "sql" / "refined" / "f.sql")


# -- 17b: integers beyond Python's digit limit -------------------------------------------------------

def test_giant_integer_is_a_located_error(tmp_path):
    path = write(tmp_path, P + "variables:\n  n: " + "9" * 5001 + "\n")
    problem = the_problem(path, "variables.n", "cannot be read as int", line=4)
    assert "5,001 characters" in problem.message and len(problem.message) < 300


def test_giant_integer_key_and_bad_timestamp_are_located(tmp_path):
    path = write(tmp_path, P + "variables:\n  ? " + "7" * 5001 + "\n  : x\n  d: 2024-13-45\n")
    the_problem(path, "variables", "cannot be read as int", line=4)
    # YAML 1.2 (issue 15) has no timestamp type: `2024-13-45` is the string it looks like, not an error
    from funnelops.errors import ProjectError
    from funnelops.spec.loader import load_project

    path.write_text(P + "variables:\n  d: 2024-13-45\n", encoding="utf-8")
    try:
        loaded = load_project(path)
    except ProjectError as exc:
        raise AssertionError(f"a YAML 1.2 string was refused: {exc}") from exc
    assert loaded.spec.variables["d"] == "2024-13-45"


# -- a tiny runnable project: one workflow whose step records its argv and home --------------------

STEP = textwrap.dedent('''
    import json, os, sys
    with open(os.environ["HOSTILE_OUT"], "a") as fh:
        fh.write(json.dumps({"file": __file__, "argv": sys.argv[1:], "home": os.environ.get("FUNNELOPS_HOME")}) + "\\n")
''')


def tiny_project(tmp: Path, main: str = "steps/step.py", variables: str = "{note: hello}",
                 job_args: str = "[]") -> Path:
    (tmp / "steps").mkdir(exist_ok=True)
    (tmp / "steps" / "step.py").write_text(STEP)
    return write(tmp, textwrap.dedent(f"""\
        project: {{id: tiny-hostile, time_zone: America/Bogota, backend: local}}
        variables: {variables}
        datasets: [{{id: tiny_ds}}]
        workflows:
          - name: tiny-dia
            granularity: DAY
            initial_load: true
            args: ["--granularity=DAY"]
            jobs:
              - step_id: the-step
                main: {main}
                args: {job_args}
        schedulers:
          - {{name: Dia, id: dia, cron: "0 6 * * *", workflow: tiny-dia}}
    """))


def cli(*argv: str) -> tuple[int, str]:
    """The real CLI in-process; (exit code, everything it printed)."""
    import contextlib
    import io

    from funnelops.cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        code = main(list(argv))
    return code, buf.getvalue()


def create_infra(project: Path, home: Path) -> None:
    code, out = cli("--project", str(project), "--home", str(home), "job", "create-infra", "--stage", "IaC")
    assert code == 0, out


def set_template_job(home: Path, workflow: str, *, main: str | None = None, args: list[str] | None = None) -> None:
    """Edit a stored template behind funnelops' back (an older version, or a hand edit)."""
    import json
    import sqlite3

    con = sqlite3.connect(home / "ledger.sqlite")
    try:
        body = json.loads(con.execute("SELECT body FROM templates WHERE name = ?", (workflow,)).fetchone()[0])
        job = body["jobs"][0]["pysparkJob"]
        if main is not None:
            job["mainPythonFileUri"] = "module:" + main
        if args is not None:
            job["args"] = args
        con.execute("UPDATE templates SET body = ? WHERE name = ?", (json.dumps(body), workflow))
        con.commit()
    finally:
        con.close()


def run_once(project: Path, home: Path):
    from funnelops.backends import open_backend

    loaded = load_project(project)
    backend = open_backend("local", loaded, home)
    try:
        run = coordinator.start(backend, "tiny-dia", trigger="manual", actor="test")
        (run,) = coordinator.wait(backend.runtime, [run.id], timeout=60)
        return run
    finally:
        backend.close()


# -- 11: what `main` may name -------------------------------------------------------------------------

@pytest.mark.parametrize("main", ["/usr/bin/evil.py", "../../../evil.py", "steps/../../evil.py",
                                  "outside/evil.py", "steps/evil.sh", "'a b.py'", "~/evil.py", "steps/missing.py"])
def test_main_outside_the_project_is_a_located_error(tmp_path, main):
    project_dir = tmp_path / "p"
    project_dir.mkdir()
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "evil.py").write_text("raise SystemExit(9)\n")
    (project_dir / "outside").symlink_to(tmp_path / "evil")  # inside by name, outside once resolved
    path = tiny_project(project_dir, main=main)
    problem = the_problem(path, "workflows[tiny-dia].jobs[the-step].main", "main", line=11)
    assert "module name" in (problem.hint or "")


@pytest.mark.parametrize("main", ["funnelops.flows", "my_pkg.my_mod", "steps/step.py"])
def test_module_names_and_files_inside_the_project_are_accepted(tmp_path, main):
    load_project(tiny_project(tmp_path, main=main))


def test_a_relative_main_runs_from_the_project_folder(tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("HOSTILE_OUT", str(out))
    (tmp_path / "proj").mkdir()
    project, home = tiny_project(tmp_path / "proj"), tmp_path / "home"
    create_infra(project, home)
    run = run_once(project, home)
    assert run.state == "DONE", run.error
    import json

    assert Path(json.loads(out.read_text())["file"]).resolve() == (project.parent / "steps" / "step.py").resolve()


def test_a_tampered_template_main_is_refused_at_run_time(tmp_path, monkeypatch):
    out = tmp_path / "out.jsonl"
    monkeypatch.setenv("HOSTILE_OUT", str(out))
    evil = tmp_path / "evil.py"
    evil.write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').close()\n")
    (tmp_path / "proj").mkdir()
    project, home = tiny_project(tmp_path / "proj"), tmp_path / "home"
    create_infra(project, home)
    for bad in (str(evil), "../evil.py"):
        set_template_job(home, "tiny-dia", main=bad)
        run = run_once(project, home)
        assert run.state == "FAILED" and "refused" in (run.error or ""), (run.state, run.error)
        assert not (tmp_path / "PWNED").exists()
    assert not out.exists()


def test_gcp_launcher_runs_a_project_file_and_refuses_an_escape(tmp_path):
    from funnelops.backends.gcp.artifacts import LAUNCHER, PROJECT_DIR, ZIP, Artifacts

    out = tmp_path / "out.jsonl"
    (tmp_path / "proj").mkdir()
    project = tiny_project(tmp_path / "proj")
    files = Artifacts(None, "tiny-artifacts", load_project(project)).files()
    launcher = tmp_path / "launcher.py"
    launcher.write_bytes(files["mains/steps/step.py.py"])
    env = dict(os.environ, FUNNELOPS_PROJECT=str(project), HOSTILE_OUT=str(out))
    proc = subprocess.run([sys.executable, str(launcher), "--x=1"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert '"argv": ["--x=1"]' in out.read_text()
    (tmp_path / "evil.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w').close()\n")
    launcher.write_text(LAUNCHER.format(main="../evil.py", zip=ZIP, pdir=PROJECT_DIR, project_file="funnel.yaml"))
    proc = subprocess.run([sys.executable, str(launcher)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "not a file inside the project folder" in proc.stderr
    assert not (tmp_path / "PWNED").exists()


# -- 12: reserved names; the runtime's flags come last --------------------------------------------------

@pytest.mark.parametrize("variables,field,line", [
    ("{home: /elsewhere}", "variables.home", 2),
    ("{project: /elsewhere/funnel.yaml}", "variables.project", 2),
    ("{HOME: /elsewhere}", "variables.HOME", 2),
    ("{granularity: YEAR}", "variables.granularity", 2),
    ("{execution_type: full}", "variables.execution_type", 2),
    ("{trusted_flows: 'false'}", "variables.trusted_flows", 2),
    ("{refined_flows: x}", "variables.refined_flows", 2),
    ("{period: '2020'}", "variables.period", 2),
])
def test_reserved_variable_names_are_refused(tmp_path, variables, field, line):
    the_problem(tiny_project(tmp_path, variables=variables), field, "reserved", line=line)


def test_reserved_argument_keys_are_refused(tmp_path):
    path = tiny_project(tmp_path, job_args='["--home=/elsewhere", "--project", "--ok=1"]')
    text = path.read_text().replace('args: ["--granularity=DAY"]', 'args: ["--granularity=DAY", "--project=/x.yaml"]')
    text = text.replace("datasets:", 'stages: {workflow: ["--home=/z"]}\ndatasets:')
    path.write_text(text)
    problems = problems_of(path)
    fields = sorted(p.field for p in problems if "reserved" in p.message)
    assert fields == ["stages.workflow", "workflows[tiny-dia].args", "workflows[tiny-dia].jobs[the-step].args",
                      "workflows[tiny-dia].jobs[the-step].args"], "\n".join(p.render() for p in problems)
    assert all(p.line for p in problems)


def test_env_and_other_variables_stay_allowed(tmp_path):
    loaded = load_project(tiny_project(tmp_path, variables="{env: dev, project_id: x, home_dir: /h}"))
    assert loaded.spec.variables["env"] == "dev"


def test_stage_arguments_come_after_variables_and_workflow_args(tmp_path):
    from funnelops.flows.args import parse_args
    from funnelops.resources import template_args

    path = tiny_project(tmp_path, job_args='["--trusted_flows=leads"]')
    loaded = load_project(path)
    args = template_args(loaded, "tiny-dia", "iac", ["--refined_flows=all"])
    assert args[-1] == "--refined_flows=false"  # the stage's argument wins over the job's
    assert parse_args(args).refined_flows == ()


def test_a_home_smuggled_into_a_template_cannot_redirect_the_flows(tmp_path, monkeypatch):
    """Even a template edited by hand to carry --home=/elsewhere runs the flows in the real home:
    the supervisor appends the runtime's --home/--project last, and the flows keep the last value."""
    (tmp_path / "proj").mkdir()
    project, home, elsewhere = tiny_project(tmp_path / "proj"), tmp_path / "home", tmp_path / "elsewhere"
    create_infra(project, home)
    set_template_job(home, "tiny-dia", main="funnelops.flows",
                     args=["--granularity=DAY", f"--home={elsewhere}", f"--project={tmp_path / 'nope.yaml'}",
                           "--trusted_flows=false", "--refined_flows=false"])
    run = run_once(project, home)
    log = (home / "runs" / str(run.id) / "the-step.log").read_text()
    assert run.state == "DONE", (run.error, log)
    assert log.splitlines()[0].endswith(f"--home={home} --project={project.resolve()}"), log.splitlines()[0]
    assert not elsewhere.exists()


# -- 17c: argument sizes ------------------------------------------------------------------------------

def test_a_200kb_variable_is_a_located_error(tmp_path):
    problem = the_problem(tiny_project(tmp_path, variables="{blob: " + "x" * 200_000 + "}"),
                          "variables.blob", "at most 8 KiB", line=2)
    assert "200,007-byte" in problem.message


def test_an_oversized_job_argument_is_a_located_error(tmp_path):
    path = tiny_project(tmp_path, job_args='["--blob=' + "é" * 5000 + '"]')
    the_problem(path, "workflows[tiny-dia].jobs[the-step].args", "at most 8 KiB", line=12)


def test_arguments_totalling_over_64kb_are_a_located_error(tmp_path):
    variables = "{" + ", ".join(f"v{i}: {'x' * 8000}" for i in range(9)) + "}"
    the_problem(tiny_project(tmp_path, variables=variables), "workflows[tiny-dia].jobs[the-step]",
                "at most 64 KiB", line=10)


# -- 17a: rich markup in user values never reaches rich as markup ----------------------------------------

def test_status_prints_markup_in_arguments_and_actor_verbatim(tmp_path, monkeypatch):
    (tmp_path / "proj").mkdir()
    project, home = tiny_project(tmp_path / "proj", variables="{note: '[bold]x[/]'}"), tmp_path / "home"
    text = project.read_text().replace(
        "datasets:", 'stages: {iac: ["--refined_flows=false", "--note=[/oops]", "--tag=[bold]x[/]"]}\ndatasets:')
    project.write_text(text)
    monkeypatch.setenv("FUNNELOPS_ACTOR", "[/evil]")
    code, out = cli("--project", str(project), "--home", str(home), "job", "create-infra", "--stage", "IaC")
    assert code == 0, out
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "funnelops", "--project", str(project), "--home", str(home),
                           "status"], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "--note=[/oops] --tag=[bold]x[/]" in proc.stdout
    assert "by [/evil]" in proc.stdout


def test_demo_summary_prints_markup_in_data_verbatim(tmp_path, capsys):
    from funnelops.cli.context import AppContext
    from funnelops.cli.demo_cmd import render_summary

    app = AppContext(project_path=tmp_path / "funnel.yaml", home=tmp_path / "home")
    render_summary(app, {"stages": [{"stage": "[/lead]", "volume": 10, "conversion_from_previous": None}],
                         "channels": [{"channel": "[bold]web[/]", "lead_to_won": 0.5, "won": 5, "leads": 10}],
                         "attainment_status": {}})
    out = capsys.readouterr().out
    assert "[/lead]" in out and "[bold]web[/]" in out


# -- 17d: the home is private ------------------------------------------------------------------------------

@pytest.fixture
def usual_umask():
    old = os.umask(0o022)  # what most shells have: without care, 0755 folders and 0644 files
    yield
    os.umask(old)


def modes(root: Path) -> dict[str, int]:
    out = {".": root.stat().st_mode & 0o777}
    for p in root.rglob("*"):
        if not p.is_symlink():
            out[str(p.relative_to(root))] = p.stat().st_mode & 0o777
    return out


def test_a_fresh_home_is_private_after_create_infra_and_a_run(tmp_path, monkeypatch, usual_umask):
    monkeypatch.setenv("HOSTILE_OUT", str(tmp_path / "out.jsonl"))
    (tmp_path / "proj").mkdir()
    project, home = tiny_project(tmp_path / "proj"), tmp_path / "state" / "home"
    text = project.read_text().replace("datasets:", "buckets: [{name: tiny-raw, role: raw}]\ndatasets:")
    text = text.replace("datasets: [{id: tiny_ds}]", "datasets: [{id: tiny_ds}]\ntables: [{dataset: tiny_ds, "
                        "name: t, schema: [{name: d, type: DATE}]}]")
    project.write_text(text)
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "funnelops", "--project", str(project), "--home", str(home),
                           "job", "create-infra", "--stage", "IaC"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    os.umask(0o022)
    assert run_once(project, home).state == "DONE"
    found = modes(home)
    assert {"ledger.sqlite", "warehouse.duckdb", "buckets/tiny-raw"} <= set(found), sorted(found)
    assert any(k.startswith("runs/") and k.endswith(".log") for k in found), sorted(found)
    wrong = {k: oct(m) for k, m in found.items()
             if m != (0o700 if (home / k).is_dir() else 0o600)}
    assert not wrong, wrong
    assert (tmp_path / "state").stat().st_mode & 0o077 == 0  # missing parents are created private too


def test_flows_started_by_hand_create_a_private_home(tmp_path, usual_umask):
    (tmp_path / "proj").mkdir()
    project, home = tiny_project(tmp_path / "proj"), tmp_path / "hand-home"
    env = dict(os.environ, NO_COLOR="1")
    proc = subprocess.run([sys.executable, "-m", "funnelops.flows", "--granularity=DAY", f"--home={home}",
                           f"--project={project}", "--trusted_flows=false", "--refined_flows=false"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert home.stat().st_mode & 0o777 == 0o700
    assert all(m & 0o077 == 0 for m in modes(home).values()), modes(home)
