"""`data load` on the local backend, in process: refused while a workflow run holds a lease
(nothing written), monthly and snapshot xlsx layouts."""

from __future__ import annotations

import shutil

import pytest

from funnelops.backends.local import LocalBackend
from funnelops.errors import RunInProgress, UsageError
from funnelops.lifecycle.data_load import load_data, plan_load
from funnelops.plan.apply import apply_plan
from funnelops.plan.diff import build_plan
from funnelops.spec.loader import load_project
from tests.integration.local.test_raw_layouts import FLOW, FUNNEL, ISO_DATE


@pytest.fixture
def setup(tmp_path):
    project = tmp_path / "project"
    shutil.copytree(FUNNEL, project, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))

    def with_flow(files: str, extra: str = 'DATE_COLUMN = "first_contact_date"'):
        (project / "flows" / "trusted" / "crm.py").write_text(FLOW.format(files=files, extra=extra, to_date=ISO_DATE),
                                                              encoding="utf-8")
        loaded = load_project(project / "funnel.yaml")
        backend = LocalBackend.for_project(loaded, tmp_path / "home")
        (tmp_path / "home" / "buckets" / loaded.spec.bucket_for("raw").name).mkdir(parents=True, exist_ok=True)
        return loaded, backend

    return with_flow, tmp_path


def test_refused_while_a_run_holds_a_lease(setup):
    with_flow, tmp = setup
    loaded, backend = with_flow("crm/{yyyymm}.csv")
    src = tmp / "in.csv"
    src.write_text("lead_id,first_contact_date,origin\n1,2024-03-05,web\n", encoding="utf-8")
    try:
        assert apply_plan(build_plan(loaded, backend, "iac"), backend).ok   # the workflow templates
        lease = backend.runtime.acquire(loaded.spec.workflows[0].name, trigger="manual", actor="test")
        with pytest.raises(RunInProgress):
            load_data(loaded, backend, "crm", [src])
        assert not any((tmp / "home" / "buckets").rglob("*.csv"))
        backend.runtime.release(lease, RuntimeError("test over"))
        [t] = load_data(loaded, backend, "crm", [src]).targets
        assert (t.name, t.rows) == ("crm/202403.csv", 1)
    finally:
        backend.close()


def test_xlsx_loads_into_a_snapshot_only(setup):
    import openpyxl

    with_flow, tmp = setup
    src = tmp / "in.xlsx"
    wb = openpyxl.Workbook()
    for row in (("lead_id", "first_contact_date", "origin"), (1, "2024-03-05", "web"), (2, "2024-03-06", "web")):
        wb.active.append(row)
    wb.save(src)
    loaded, backend = with_flow("crm/leads.xlsx")
    try:
        [t] = load_data(loaded, backend, "crm", [src]).targets
        assert (t.name, t.rows, t.data) == ("crm/leads.xlsx", 2, src.read_bytes())
    finally:
        backend.close()
    loaded, backend = with_flow("crm/{yyyymmdd}.xlsx")
    backend.close()
    with pytest.raises(UsageError, match="snapshot FILES only"):
        plan_load(loaded, "crm", [src])
    loaded, backend = with_flow("crm/{yyyymmdd}.csv")
    backend.close()
    with pytest.raises(UsageError, match="reads .csv files"):
        plan_load(loaded, "crm", [src])


def test_header_not_the_flows_columns_is_refused_with_the_file(setup):
    with_flow, tmp = setup
    loaded, backend = with_flow("crm/leads.csv")
    backend.close()
    src = tmp / "leads.csv"
    src.write_text("lead_id,first_contact,origin\n1,2024-03-05,web\n", encoding="utf-8")
    with pytest.raises(UsageError) as exc:
        plan_load(loaded, "crm", [src])
    assert f"{src}:1" in exc.value.message and "first_contact_date" in exc.value.message
