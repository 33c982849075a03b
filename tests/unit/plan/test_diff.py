"""The diff: leaf-level field changes, update-or-replace decisions, ordering, waiting."""

from __future__ import annotations

import pytest

from funnelops.backends.base import Observed
from funnelops.plan.diff import diff_resource, field_diff, topo_order
from funnelops.plan.model import FieldChange
from funnelops.resources import Resource


def col(name: str, type_: str = "STRING", mode: str = "NULLABLE") -> dict:
    return {"name": name, "type": type_, "mode": mode}


# --- field_diff ------------------------------------------------------------------------------
def test_field_diff_nested_dicts_report_leaves() -> None:
    before = {"a": 1, "b": {"x": 1, "y": 2}, "gone": True}
    after = {"a": 1, "b": {"x": 1, "y": 3}, "new": "v"}
    assert field_diff(before, after) == [
        FieldChange("b.y", 2, 3), FieldChange("gone", True, None), FieldChange("new", None, "v")]


def test_field_diff_matches_list_items_by_step_id() -> None:
    before = {"jobs": [{"step_id": "a", "args": ["--x=1"]}, {"step_id": "b", "args": []}]}
    after = {"jobs": [{"step_id": "a", "args": ["--x=2"]}, {"step_id": "b", "args": []}]}
    assert field_diff(before, after) == [FieldChange("jobs[a].args", ["--x=1"], ["--x=2"])]


def test_field_diff_matches_columns_by_name() -> None:
    before = {"schema": [col("a"), col("b", "INTEGER")]}
    after = {"schema": [col("a"), col("b", "FLOAT")]}
    assert field_diff(before, after) == [FieldChange("schema[b].type", "INTEGER", "FLOAT")]


def test_field_diff_whole_list_when_items_differ_in_names_or_order() -> None:
    before = {"schema": [col("a"), col("b")]}
    after = {"schema": [col("b"), col("a")]}
    assert field_diff(before, after) == [FieldChange("schema", before["schema"], after["schema"])]


def test_field_diff_identical_is_empty() -> None:
    cfg = {"a": [1, 2], "b": {"c": None}}
    assert field_diff(cfg, {"a": [1, 2], "b": {"c": None}}) == []


# --- update or replace -----------------------------------------------------------------------
def table(schema: list[dict], partitioning=None, protected: bool = False, labels=None) -> Resource:
    return Resource("table", "ds.t", {"description": "", "schema": schema, "partitioning": partitioning,
                                      "clustering": [], "labels": labels or {}}, ("dataset.ds",), protected)


def obs_of(res: Resource, rows: int = 0, **override) -> Observed:
    return Observed({**res.config, **override}, rows=rows)


BASE = [col("day", "DATE", "REQUIRED"), col("n", "INTEGER")]


@pytest.mark.parametrize("new_schema, action", [
    (BASE + [col("extra")], "update"),                                    # column appended, NULLABLE
    (BASE[:1], "replace"),                                                # column removed
    ([BASE[0], col("n", "FLOAT")], "replace"),                            # retyped
    ([BASE[0], col("m", "INTEGER")], "replace"),                          # renamed
    (BASE + [col("extra", "STRING", "REQUIRED")], "replace"),             # appended REQUIRED
    ([col("day", "DATE", "NULLABLE"), BASE[1]], "update"),                # REQUIRED -> NULLABLE relaxes
    ([BASE[0], col("n", "INTEGER", "REQUIRED")], "replace"),              # NULLABLE -> REQUIRED tightens
    (BASE, "unchanged"),
], ids=["add-col", "remove-col", "retype", "rename", "add-required", "relax", "tighten", "same"])
def test_schema_changes(new_schema, action) -> None:
    observed = obs_of(table(BASE))
    assert diff_resource(table(new_schema), observed).action == action


def test_partitioning_change_is_replace_and_flags_data_loss() -> None:
    old = table(BASE, {"field": "day", "type": "DAY"})
    new = table(BASE, {"field": "day", "type": "MONTH"})
    ch = diff_resource(new, obs_of(old, rows=7))
    assert ch.action == "replace"
    assert ch.data_loss is True
    assert "partitioning" in ch.reason
    assert [f.field for f in ch.fields] == ["partitioning.type"]


def test_replace_of_protected_table_is_flagged() -> None:
    ch = diff_resource(table(BASE[:1], protected=True), obs_of(table(BASE)))
    assert ch.action == "replace" and ch.protected and not ch.data_loss


def test_labels_change_is_update() -> None:
    ch = diff_resource(table(BASE, labels={"a": "b"}), obs_of(table(BASE)))
    assert ch.action == "update"
    assert ch.fields == (FieldChange("labels.a", None, "b"),)


def bucket(location: str = "US", labels=None) -> Resource:
    return Resource("bucket", "demo-raw", {"location": location, "storage_class": "STANDARD",
                                           "labels": labels or {}, "lifecycle_rules": []})


def test_bucket_location_is_replace_labels_update() -> None:
    assert diff_resource(bucket("EU"), obs_of(bucket("US"))).action == "replace"
    assert diff_resource(bucket(labels={"k": "v"}), obs_of(bucket())).action == "update"


def test_dataset_location_is_replace() -> None:
    ds = Resource("dataset", "ds", {"location": "EU", "description": "", "labels": {}})
    assert diff_resource(ds, Observed({"location": "US", "description": "", "labels": {}})).action == "replace"


def test_create_only_fields_are_ignored() -> None:
    cfg = {"schedule": "0 6 * * *", "paused": False}
    res = Resource("scheduler", "dia", cfg, create_only=frozenset({"paused"}))
    assert diff_resource(res, Observed({"schedule": "0 6 * * *", "paused": True})).action == "unchanged"
    ch = diff_resource(res, Observed({"schedule": "0 7 * * *", "paused": True}))
    assert ch.action == "update" and [f.field for f in ch.fields] == ["schedule"]


def test_template_arg_change_is_update_not_replace() -> None:
    job = {"step_id": "s-1", "main": "m", "args": ["--refined_flows=false"], "prerequisites": [], "properties": {}}
    old = Resource("workflow_template", "wf", {"jobs": [job]})
    new = Resource("workflow_template", "wf", {"jobs": [{**job, "args": ["--trusted_flows=false"]}]})
    ch = diff_resource(new, Observed(old.config))
    assert ch.action == "update"
    assert ch.fields == (FieldChange("jobs[s-1].args", ["--refined_flows=false"], ["--trusted_flows=false"]),)


# --- ordering --------------------------------------------------------------------------------
def R(kind: str, name: str, *deps: str) -> Resource:
    return Resource(kind, name, {}, tuple(deps))


def test_topo_order_puts_views_after_what_they_read() -> None:
    resources = [
        R("view", "rep.v2", "dataset.rep", "view.rep.v1"),
        R("view", "rep.v1", "dataset.rep", "table.ds.t"),
        R("scheduler", "dia", "workflow_template.wf"),
        R("table", "ds.t", "dataset.ds"),
        R("workflow_template", "wf"),
        R("dataset", "rep"),
        R("dataset", "ds"),
        R("bucket", "b"),
    ]
    order = [r.address for r in topo_order(resources)]
    pos = {a: i for i, a in enumerate(order)}
    for r in resources:
        for d in r.depends_on:
            assert pos[d] < pos[r.address], (d, r.address, order)
    assert sorted(order) == sorted(r.address for r in resources)


def test_topo_order_view_listed_before_a_view_of_the_same_kind() -> None:
    # only kind order breaks ties; dependency between two views must still win
    order = [r.address for r in topo_order([R("view", "a.z", "view.a.y"), R("view", "a.y", "view.a.x"),
                                            R("view", "a.x")])]
    assert order == ["view.a.x", "view.a.y", "view.a.z"]


def test_topo_order_ignores_dependencies_outside_the_set() -> None:
    order = topo_order([R("view", "a.v", "external_table.a.leads", "dataset.a")])
    assert [r.address for r in order] == ["view.a.v"]
