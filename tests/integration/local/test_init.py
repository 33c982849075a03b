"""`funnelops init`: a neutral project that validates as written, with names from --name."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from funnelops.cli.main import main
from funnelops.lifecycle.init_project import TEMPLATE_DIR, derive_names
from funnelops.spec.loader import load_project

EXAMPLE_NAMES = ("analitica", "Día", "dia", "Mes", "Año", "anio", "funnel-", "funnel_", "TERADATA", "Duplicado")


def _init(capsys, *args: str) -> tuple[int, dict | None]:
    code = main(["--json", "init", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


def test_init_writes_a_project_that_validates(tmp_path, capsys) -> None:
    target = tmp_path / "Acme CRM"
    code, report = _init(capsys, str(target))
    assert code == 0 and report is not None
    assert report["slug"] == "acme-crm"
    assert sorted(report["files"]) == ["flows/trusted/leads.py", "funnel.schema.json", "funnel.yaml",
                                       "sql/refined/leads_per_period.sql"]
    assert main(["--json", "--project", str(target / "funnel.yaml"), "validate"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"] == {
        "buckets": 4, "datasets": 2, "tables": 1, "external_tables": 1, "views": 0, "workflows": 3, "schedulers": 3}
    spec = load_project(target / "funnel.yaml").spec
    assert {b.role for b in spec.buckets} == {"raw", "trusted", "refined", "artifacts"}
    assert sorted(w.granularity for w in spec.workflows) == ["DAY", "MONTH", "YEAR"]
    assert [s.name for s in spec.schedulers] == ["daily", "monthly", "yearly"]
    assert {s.workflow for s in spec.schedulers} == {w.name for w in spec.workflows}
    assert any("funnelops data load" in step for step in report["next_steps"])


def test_the_flow_follows_the_snapshot_contract(tmp_path, capsys) -> None:
    _init(capsys, str(tmp_path / "p"))
    flow = (tmp_path / "p" / "flows" / "trusted" / "leads.py").read_text()
    assert 'FILES = "crm/leads.csv"' in flow and 'DATE_COLUMN = "created_date"' in flow
    sql = (tmp_path / "p" / "sql" / "refined" / "leads_per_period.sql").read_text()
    assert sql.startswith("-- target: p_refined.leads_per_period\n-- replace: period\n")


def test_schema_header_and_file_let_an_editor_check_the_project(tmp_path, capsys) -> None:
    _init(capsys, str(tmp_path / "crm"), "--name", "crm")
    text = (tmp_path / "crm" / "funnel.yaml").read_text()
    assert text.splitlines()[0] == "# yaml-language-server: $schema=./funnel.schema.json"
    schema = json.loads((tmp_path / "crm" / "funnel.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(text))


def test_no_example_name_leaks_into_a_new_project(tmp_path, capsys) -> None:
    _init(capsys, str(tmp_path / "p"), "--name", "shop")
    for path in (tmp_path / "p").rglob("*"):
        if path.is_file() and path.name != "funnel.schema.json":
            text = path.read_text()
            leaked = [n for n in EXAMPLE_NAMES if n in text]
            assert not leaked, f"{path.name} names the example: {leaked}"


@pytest.mark.parametrize(("name", "slug", "project_id"), [
    ("Acme CRM", "acme-crm", "acme-crm"),
    ("Ventas Análisis 2024", "ventas-analisis-2024", "ventas-analisis-2024"),
    ("42", "p-42", "p-42-data"),
    ("a", "a", "a-data"),
    ("x" * 80, "x" * 40, "x" * 30),
    ("__my__project__", "my-project", "my-project"),
])
def test_names_are_derived_to_the_spec_patterns(tmp_path, capsys, name, slug, project_id) -> None:
    names = derive_names(name)
    assert (names.slug, names.project_id) == (slug, project_id)
    code, _ = _init(capsys, str(tmp_path / "p"), "--name", name)
    assert code == 0
    assert main(["--project", str(tmp_path / "p" / "funnel.yaml"), "validate"]) == 0


def test_a_name_without_letters_or_digits_is_refused(tmp_path, capsys) -> None:
    code = main(["init", str(tmp_path / "p"), "--name", "!!! ???"])
    err = capsys.readouterr().err
    assert code == 2 and "no letter or digit" in err
    assert not (tmp_path / "p").exists()


def test_a_non_empty_folder_is_refused_without_force(tmp_path, capsys) -> None:
    target = tmp_path / "p"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    code = main(["init", str(target)])
    assert code == 2 and "not empty" in capsys.readouterr().err
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]
    assert main(["init", str(target), "--force"]) == 0
    assert (target / "notes.txt").read_text() == "mine"
    assert main(["--project", str(target / "funnel.yaml"), "validate"]) == 0


def test_a_file_in_the_way_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "p").write_text("x")
    assert main(["init", str(tmp_path / "p")]) == 2
    assert "not a directory" in capsys.readouterr().err


def test_dry_run_writes_nothing(tmp_path, capsys) -> None:
    assert main(["--dry-run", "init", str(tmp_path / "p")]) == 0
    assert not (tmp_path / "p").exists()


def test_the_template_ships_inside_the_package() -> None:
    """The wheel packages src/funnelops whole (pyproject: packages = ["src/funnelops"]), so the
    template must live under it, not under projects/."""
    src = Path(__file__).resolve().parents[3] / "src" / "funnelops"
    assert TEMPLATE_DIR.resolve().is_relative_to(src.resolve())
    assert (TEMPLATE_DIR / "funnel.yaml.tmpl").is_file()
    pyproject = (src.parents[1] / "pyproject.toml").read_text()
    assert 'packages = ["src/funnelops"]' in pyproject
