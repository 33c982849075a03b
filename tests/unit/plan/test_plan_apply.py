"""build_plan and apply_plan against a small in-memory backend that records calls and fails on demand.

`FakeBackend` implements the handler protocol for real (observe/create/update/delete keep an
in-memory world), so a failed apply leaves a world that the next plan observes and finishes.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from collections.abc import Iterable

import pytest

from funnelops.backends.base import KINDS, Observed, ResourceHandler
from funnelops.errors import BackendError, DataLossRefused
from funnelops.plan.apply import apply_plan, raise_if_failed
from funnelops.plan.diff import build_plan
from funnelops.resources import Resource
from funnelops.spec.loader import load_project

PROJECT = """\
project:
  id: demo-project
buckets:
  - name: demo-trusted
  - name: demo-keep
    deletion_protection: true
datasets:
  - id: ds
  - id: other
  - id: rep
tables:
  - dataset: ds
    name: t1
    schema: [{name: day, type: DATE}, {name: n, type: INT64}]
  - dataset: other
    name: t2
    schema: [{name: day, type: DATE}]
  - dataset: ds
    name: locked
    schema: [{name: day, type: DATE}]
    deletion_protection: true
external_tables:
  - {dataset: ds, name: leads, bucket: demo-trusted, prefix: leads/}
views:
  - {dataset: rep, name: v_t1, query: SELECT * FROM ds.t1}
  - {dataset: rep, name: v_leads, query: SELECT * FROM ds.leads}
  - {dataset: rep, name: v_both, query: SELECT * FROM rep.v_t1 JOIN rep.v_leads USING (day)}
workflows:
  - name: wf-day
    granularity: DAY
    jobs: [{step_id: step-one}]
schedulers:
  - {name: Día, id: dia, cron: "0 6 * * *", workflow: wf-day}
"""


class FakeStorage:
    def __init__(self) -> None:
        self.objects: set[tuple[str, str]] = set()

    def has_objects(self, bucket: str, prefix: str, suffix: str = "") -> bool:
        return any(b == bucket and k.startswith(prefix + "/") and k.endswith(suffix) for b, k in self.objects)

    def list_objects(self, bucket: str, prefix: str) -> list[str]:
        return sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))


class FakeHandler:
    def __init__(self, kind: str, backend: FakeBackend) -> None:
        self.kind = kind
        self.b = backend

    def _call(self, op: str, address: str) -> None:
        with self.b.lock:
            self.b.calls.append((op, address))
        if (op, address) in self.b.fail:
            raise BackendError(f"injected failure: {op} {address}")

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        return {n: Observed(dict(cfg), rows=self.b.rows.get(f"{self.kind}.{n}", 0 if self.kind == "table" else None))
                for n, cfg in self.b.world[self.kind].items()}

    def create(self, res: Resource) -> None:
        self._call("create", res.address)
        self.b.world[self.kind][res.name] = dict(res.config)

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        self._call("update", res.address)
        self.b.world[self.kind][res.name] = dict(res.config)

    def delete(self, name: str, observed: Observed) -> None:
        self._call("delete", f"{self.kind}.{name}")
        self.b.world[self.kind].pop(name, None)


class FakeTableHandler(FakeHandler):
    def rows(self, name: str) -> int:
        return self.b.rows.get(f"table.{name}", 0)


class FakeBackend:
    name = "fake"
    max_parallel = 2

    def __init__(self) -> None:
        self.storage = FakeStorage()
        self.world: dict[str, dict[str, dict]] = {k: {} for k in KINDS}
        self.rows: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self._handlers = {k: (FakeTableHandler if k == "table" else FakeHandler)(k, self) for k in KINDS}

    def handler(self, kind: str) -> FakeHandler:
        return self._handlers[kind]

    def owned_resources(self, stage: str) -> list:
        return []

    # What plan/ uses of the Backend contract besides the handlers: nothing to hold or check here.
    def table_rows(self, name: str) -> int:
        return self.rows.get(f"table.{name}", 0)

    def apply_session(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def check_plan(self, plan) -> None:
        pass

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        pass


@pytest.fixture
def loaded(tmp_path: Path):
    (tmp_path / "funnel.yaml").write_text(PROJECT, encoding="utf-8")
    return load_project(tmp_path / "funnel.yaml")


def actions(plan) -> dict[str, str]:
    return {c.address: c.action for c in plan.changes}


def test_fake_handlers_implement_the_protocol() -> None:
    b = FakeBackend()
    assert all(isinstance(b.handler(k), ResourceHandler) for k in KINDS)


def test_iac_from_empty_creates_all_but_external_tables(loaded) -> None:
    plan = build_plan(loaded, FakeBackend(), "IaC")
    acts = actions(plan)
    assert "external_table.ds.leads" not in acts  # deferred in the IaC stage
    # views reading the deferred external table cannot be created yet: they wait
    assert acts["view.rep.v_leads"] == acts["view.rep.v_both"] == "waiting"
    assert acts["view.rep.v_t1"] == "create"
    # 2 buckets + 3 datasets + 3 tables + v_t1 + template + scheduler
    assert plan.summary() == {"create": 11, "update": 0, "replace": 0, "delete": 0, "unchanged": 0, "waiting": 2}
    order = [c.address for c in plan.changes]
    assert order.index("table.ds.t1") < order.index("view.rep.v_t1") < order.index("view.rep.v_both")
    assert order.index("workflow_template.wf-day") < order.index("scheduler.dia")


def test_view_reading_waiting_external_table_waits(loaded) -> None:
    b = FakeBackend()
    plan = build_plan(loaded, b, "initial-data")
    acts = actions(plan)
    assert acts["external_table.ds.leads"] == "waiting"
    assert acts["view.rep.v_leads"] == "waiting"
    assert acts["view.rep.v_both"] == "waiting"  # reads v_leads, which waits
    assert acts["view.rep.v_t1"] == "create"
    assert plan.summary()["waiting"] == 3
    by = {c.address: c for c in plan.changes}
    assert "demo-trusted/leads" in by["external_table.ds.leads"].reason
    assert "view.rep.v_leads" in by["view.rep.v_both"].reason
    # once a parquet file exists under the prefix, all three are created
    b.storage.objects.add(("demo-trusted", "leads/day=2024-01-01/part-0.parquet"))
    acts = actions(build_plan(loaded, b, "initial-data"))
    assert {acts[a] for a in ("external_table.ds.leads", "view.rep.v_leads", "view.rep.v_both")} == {"create"}


def test_a_non_parquet_file_does_not_end_the_wait(loaded) -> None:
    b = FakeBackend()
    b.storage.objects.add(("demo-trusted", "leads/readme.txt"))
    assert actions(build_plan(loaded, b, "initial-data"))["external_table.ds.leads"] == "waiting"


def converge(loaded, b: FakeBackend, stage: str = "initial-data"):
    plan = build_plan(loaded, b, stage)
    result = apply_plan(plan, b)
    raise_if_failed(result)
    return plan, result


def test_apply_then_plan_is_all_unchanged(loaded) -> None:
    b = FakeBackend()
    b.storage.objects.add(("demo-trusted", "leads/x.parquet"))
    plan, result = converge(loaded, b)
    assert result.ok and len(result.done) == len(plan.mutating()) == 14
    again = build_plan(loaded, b, "initial-data")
    assert not again.has_changes
    assert again.summary() == {"create": 0, "update": 0, "replace": 0, "delete": 0, "unchanged": 14, "waiting": 0}


def test_apply_respects_dependency_order(loaded) -> None:
    b = FakeBackend()
    b.storage.objects.add(("demo-trusted", "leads/x.parquet"))
    plan, _ = converge(loaded, b)
    done_at = {addr: i for i, (_op, addr) in enumerate(b.calls)}
    for c in plan.mutating():
        for d in c.depends_on:
            if d in done_at:
                assert done_at[d] < done_at[c.address], (d, c.address)


def test_deletes_go_in_reverse_dependency_order(loaded) -> None:
    b = FakeBackend()
    # things funnelops manages that left the spec
    b.world["bucket"]["old-bucket"] = {}
    b.world["dataset"]["old_ds"] = {}
    b.world["table"]["old_ds.t"] = {}
    b.world["view"]["old_ds.v"] = {}
    b.world["scheduler"]["old-sched"] = {}
    b.world["workflow_template"]["old-wf"] = {}
    plan = build_plan(loaded, b, "iac")
    deletes = [c.address for c in plan.changes if c.action == "delete"]
    assert deletes == ["scheduler.old-sched", "workflow_template.old-wf", "view.old_ds.v", "table.old_ds.t",
                       "dataset.old_ds", "bucket.old-bucket"]
    # deletes come before creates in the plan, and are applied in that order
    first_create = next(i for i, c in enumerate(plan.changes) if c.action == "create")
    assert all(i < first_create for i, c in enumerate(plan.changes) if c.action == "delete")
    result = apply_plan(plan, b)
    assert result.ok
    assert [a for op, a in b.calls if op == "delete"] == deletes


def test_external_table_deferred_at_iac_is_not_deleted(loaded) -> None:
    b = FakeBackend()
    b.storage.objects.add(("demo-trusted", "leads/x.parquet"))
    converge(loaded, b)
    acts = actions(build_plan(loaded, b, "iac"))
    assert "external_table.ds.leads" not in acts or acts["external_table.ds.leads"] != "delete"
    assert "delete" not in acts.values()


# --- guards -----------------------------------------------------------------------------------
def test_replace_of_table_with_rows_refused_and_nothing_applied(loaded) -> None:
    b = FakeBackend()
    converge(loaded, b, "iac")
    b.world["table"]["ds.t1"]["schema"] = [{"name": "day", "type": "DATE", "mode": "NULLABLE"},
                                           {"name": "n", "type": "STRING", "mode": "NULLABLE"}]  # retyped by hand
    b.world["bucket"]["demo-trusted"]["labels"] = {"edited": "yes"}  # an innocent update in the same plan
    b.rows["table.ds.t1"] = 5
    b.calls.clear()
    plan = build_plan(loaded, b, "iac")
    assert actions(plan)["table.ds.t1"] == "replace"
    assert actions(plan)["bucket.demo-trusted"] == "update"
    with pytest.raises(DataLossRefused) as info:
        apply_plan(plan, b)
    assert "table.ds.t1" in info.value.message
    assert b.calls == []  # not even the bucket update
    result = apply_plan(plan, b, allow_data_loss=True)
    assert result.ok
    assert b.calls.index(("delete", "table.ds.t1")) < b.calls.index(("create", "table.ds.t1"))


def test_delete_of_table_with_rows_refused_without_allow_data_loss(loaded) -> None:
    b = FakeBackend()
    converge(loaded, b, "iac")
    b.world["table"]["ds.gone"] = {"schema": []}
    b.rows["table.ds.gone"] = 1
    b.calls.clear()
    plan = build_plan(loaded, b, "iac")
    assert actions(plan)["table.ds.gone"] == "delete"
    with pytest.raises(DataLossRefused):
        apply_plan(plan, b)
    assert b.calls == []
    b.rows["table.ds.gone"] = 0  # emptied: now it may go
    assert apply_plan(build_plan(loaded, b, "iac"), b).ok
    assert b.calls == [("delete", "table.ds.gone")]


def test_replacing_a_dataset_whose_tables_hold_rows_is_refused(loaded) -> None:
    b = FakeBackend()
    converge(loaded, b, "iac")
    b.world["dataset"]["ds"]["location"] = "EU"  # the location cannot change in place
    b.rows["table.ds.t1"] = 3
    b.calls.clear()
    plan = build_plan(loaded, b, "iac")
    assert actions(plan)["dataset.ds"] == "replace"
    assert actions(plan)["table.ds.t1"] == "unchanged"
    with pytest.raises(DataLossRefused) as info:
        apply_plan(plan, b)
    assert "dataset.ds" in info.value.message
    assert b.calls == []
    b.rows["table.ds.t1"] = 0
    assert apply_plan(build_plan(loaded, b, "iac"), b).ok
    assert b.calls == [("delete", "dataset.ds"), ("create", "dataset.ds")]


def test_deletion_protection_is_always_refused(loaded) -> None:
    b = FakeBackend()
    converge(loaded, b, "iac")
    b.world["table"]["ds.locked"]["schema"] = [{"name": "other", "type": "DATE", "mode": "NULLABLE"}]
    b.calls.clear()
    plan = build_plan(loaded, b, "iac")
    (ch,) = [c for c in plan.changes if c.address == "table.ds.locked"]
    assert ch.action == "replace" and ch.protected
    with pytest.raises(DataLossRefused) as info:
        apply_plan(plan, b, allow_data_loss=True)
    assert "deletion protection" in info.value.message
    assert b.calls == []


# --- failures ---------------------------------------------------------------------------------
def test_failure_skips_dependents_independent_ones_finish_next_apply_finishes(loaded) -> None:
    b = FakeBackend()
    b.storage.objects.add(("demo-trusted", "leads/x.parquet"))
    b.fail = {("create", "dataset.ds")}
    plan = build_plan(loaded, b, "initial-data")
    result = apply_plan(plan, b)
    failed = {c.address for c, _ in result.failed}
    skipped = {c.address for c in result.skipped}
    done = {c.address for c, _ in result.done}
    assert failed == {"dataset.ds"}
    # everything in ds, and the views reading it, transitively
    assert skipped == {"table.ds.t1", "table.ds.locked", "external_table.ds.leads", "view.rep.v_t1",
                       "view.rep.v_leads", "view.rep.v_both"}
    # independent of ds: all finished
    assert done == {"bucket.demo-trusted", "bucket.demo-keep", "dataset.other", "dataset.rep", "table.other.t2",
                    "workflow_template.wf-day", "scheduler.dia"}
    assert not result.ok
    with pytest.raises(BackendError) as info:
        raise_if_failed(result)
    assert "dataset.ds" in info.value.message
    # no skipped change was attempted
    assert not [a for _op, a in b.calls if a in skipped]

    b.fail.clear()
    b.calls.clear()
    plan2 = build_plan(loaded, b, "initial-data")
    assert {c.address for c in plan2.mutating()} == failed | skipped
    assert all(c.action == "create" for c in plan2.mutating())
    assert apply_plan(plan2, b).ok
    assert not build_plan(loaded, b, "initial-data").has_changes


def test_progress_reports_start_done_failed(loaded) -> None:
    from funnelops.reporting import RecordingReporter, ResourceFinished, ResourceStarted

    b = FakeBackend()
    b.fail = {("create", "bucket.demo-keep")}
    rec = RecordingReporter()
    apply_plan(build_plan(loaded, b, "iac"), b, reporter=rec)
    finished = {e.address: e for e in rec.of(ResourceFinished)}
    assert not finished["bucket.demo-keep"].ok and "injected failure" in finished["bucket.demo-keep"].error
    assert finished["bucket.demo-trusted"].ok
    starts = {e.address for e in rec.of(ResourceStarted)}
    assert starts == set(finished)


def test_failed_delete_stops_before_creates(loaded) -> None:
    b = FakeBackend()
    b.world["dataset"]["old_ds"] = {}
    b.fail = {("delete", "dataset.old_ds")}
    result = apply_plan(build_plan(loaded, b, "iac"), b)
    assert [c.address for c, _ in result.failed] == ["dataset.old_ds"]
    assert result.done == []
    assert b.calls == [("delete", "dataset.old_ds")]
