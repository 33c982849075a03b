"""The validation pipeline in pieces: resolving files returns values, each checker runs alone.

`test_malformed.py` covers the messages end to end through `load_project`; these tests pin what
the split made reachable: `resolve_files` produces values without touching the loaded project,
a checker reports only its own kind of problem, and set-aside names count as known.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from funnelops.errors import ProblemCollector
from funnelops.spec.loader import parse_yaml
from funnelops.spec.models import ProjectSpec, WorkflowStep
from funnelops.spec.project import LoadedProject
from funnelops.spec.resolve import resolve_files
from funnelops.spec.validate import CHECKS, Checked, check_cron, check_references, known_names

TEXT = """project:
  id: demo-project
datasets:
  - id: ds
tables:
  - dataset: ds
    name: t1
    schema_file: schemas/t1.json
views:
  - dataset: ds
    name: v1
    query_file: sql/v1.sql
workflows:
  - name: wf-day
    granularity: DAY
    jobs:
      - step_id: step-one
schedulers:
  - {name: Día, id: dia, cron: "0 6 * *", workflow: wf-dai}
"""


def _loaded(tmp_path: Path, text: str = TEXT) -> LoadedProject:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "t1.json").write_text('[{"name": "day", "type": "DATE"}]', encoding="utf-8")
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "v1.sql").write_text("SELECT day FROM ds.t1\n", encoding="utf-8")
    path = tmp_path / "funnel.yaml"
    path.write_text(text, encoding="utf-8")
    data, lines = parse_yaml(text, str(path))
    return LoadedProject(spec=ProjectSpec.model_validate(data), path=path, lines=lines)


def _checked(loaded: LoadedProject, extra: dict[str, set[str]] | None = None) -> Checked:
    resolved = resolve_files(loaded, str(loaded.path), ProblemCollector())
    return Checked(loaded, str(loaded.path), known_names(loaded.spec, extra), resolved)


def test_resolve_files_returns_values_and_leaves_the_project_alone(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    c = ProblemCollector()
    resolved = resolve_files(loaded, "funnel.yaml", c)
    assert c.problems == []
    assert loaded.table_schemas == {} and loaded.view_sql == {}
    assert [col.name for col in resolved.table_columns[0] or []] == ["day"]
    assert resolved.view_sql_by_address(loaded) == {"ds.v1": "SELECT day FROM ds.t1"}
    assert list(resolved.table_schemas(loaded)) == ["ds.t1"]


def test_an_unusable_file_is_a_problem_and_a_gap(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path)
    (tmp_path / "sql" / "v1.sql").unlink()
    c = ProblemCollector()
    resolved = resolve_files(loaded, "funnel.yaml", c)
    assert resolved.view_sql == (None,)
    assert [(p.line, p.field) for p in c.problems] == [(12, "views[v1].query_file")]


def test_a_checker_reports_only_its_own_kind(tmp_path: Path) -> None:
    checked = _checked(_loaded(tmp_path))
    c = ProblemCollector()
    check_cron(checked, c)
    assert [(p.line, p.field) for p in c.problems] == [(19, "schedulers[Día].cron")]
    c = ProblemCollector()
    check_references(checked, c)
    assert [(p.field, p.hint) for p in c.problems] == [("schedulers[Día].workflow", "did you mean 'wf-day'?")]


def test_a_set_aside_name_is_a_known_reference(tmp_path: Path) -> None:
    checked = _checked(_loaded(tmp_path), {"workflows": {"wf-dai"}})
    c = ProblemCollector()
    check_references(checked, c)
    assert c.problems == []


def test_the_pipeline_runs_small_checkers(tmp_path: Path) -> None:
    assert all(len(inspect.getsource(check).splitlines()) < 50 for check in CHECKS)
    loaded = _loaded(tmp_path)
    c = ProblemCollector()
    for check in CHECKS:
        check(_checked(loaded), c)
    assert {p.field for p in c.problems} == {"schedulers[Día].cron", "schedulers[Día].workflow"}
    assert isinstance(loaded.spec.workflows[0].jobs[0], WorkflowStep)


def test_no_function_in_src_is_over_100_lines() -> None:
    """The issue's bound (#10): a function longer than this hides more than one job."""
    src = Path(__file__).resolve().parents[3] / "src" / "funnelops"
    long = []
    for f in src.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > 100:
                    long.append(f"{f.relative_to(src)}:{node.lineno} {node.name} ({size} lines)")
    assert long == []
