"""The run tail and the values every instantiation sends (backends/run_params.py)."""

from __future__ import annotations

import pytest

from funnelops.backends.run_params import (default_execution_type, field_value, instantiate_values, substitute,
                                           with_run_tail)
from funnelops.backends.shapes import template_to_dataproc
from funnelops.errors import UsageError
from funnelops.flows.args import parse_args


def cfg(args: list[str], main: str = "funnelops.flows", params: list | None = None) -> dict:
    jobs = [{"step_id": "flows", "main": main, "args": args, "prerequisites": [], "properties": {}},
            {"step_id": "other", "main": "pkg.tool", "args": ["--x=1"], "prerequisites": ["flows"], "properties": {}}]
    jobs, parameters = with_run_tail(jobs, params or [])
    return {"granularity": "DAY", "initial_load": True, "jobs": jobs, "parameters": parameters,
            "placement": {"cluster_name": "c1", "master_machine_type": "m", "worker_machine_type": "w",
                          "workers": 2, "image_version": "2.2-debian12"},
            "dag_timeout": "3600s", "labels": {"zone": "a"}}


def test_the_tail_repeats_the_last_execution_type_and_names_the_scheduled_lease() -> None:
    c = cfg(["--granularity=DAY", "--execution_type=full", "--refined_flows=false"])
    flows, other = c["jobs"]
    # the step's own --execution_type moves into the tail: one copy, in the parameter's slot
    assert flows["args"] == ["--granularity=DAY", "--refined_flows=false",
                             "--execution_type=full", "--lease=scheduled", "--period=current"]
    assert other["args"] == ["--x=1"]  # not the flows program: no tail
    assert [(p["name"], p["fields"]) for p in c["parameters"]] == [
        ("FO_EXECUTION_TYPE", ["jobs['flows'].pysparkJob.args[2]"]),
        ("FO_LEASE", ["jobs['flows'].pysparkJob.args[3]"]),
        ("FO_PERIOD", ["jobs['flows'].pysparkJob.args[4]"])]
    assert default_execution_type([]) == "delta"
    # the flows program reads the tail: the last value of a key wins, --lease is known
    parsed = parse_args(flows["args"] + ["--execution_type=delta"])
    assert parsed.execution_type == "delta" and parsed.lease == "scheduled" and parsed.ignored == ()
    assert parsed.period == "current"


def test_the_tail_keeps_the_steps_own_period_and_ends_with_the_workflow() -> None:
    jobs = [{"step_id": "flows", "main": "funnelops.flows", "args": ["--period=previous"], "prerequisites": []}]
    out, _ = with_run_tail(jobs, [], "wf")
    assert out[0]["args"] == ["--execution_type=delta", "--lease=scheduled", "--period=previous", "--workflow=wf"]


def test_each_carried_key_appears_once_and_its_last_value_wins() -> None:
    """Before: `--execution_type=delta` and `--period=previous` showed twice in every template, run
    and status (the workflow's copy, then the tail's)."""
    jobs = [{"step_id": "flows", "main": "funnelops.flows", "prerequisites": [],
             "args": ["--execution_type=delta", "--period=previous", "--g=1", "--execution_type=full", "--period=2024"]}]
    out, params = with_run_tail(jobs, [], "wf")
    args = out[0]["args"]
    assert args == ["--g=1", "--execution_type=full", "--lease=scheduled", "--period=2024", "--workflow=wf"]
    for key in ("--execution_type=", "--period=", "--lease=", "--workflow="):
        assert sum(a.startswith(key) for a in args) == 1, key
    assert {p["name"]: p["fields"] for p in params}["FO_PERIOD"] == ["jobs['flows'].pysparkJob.args[3]"]


def test_a_value_for_every_declared_parameter() -> None:
    user = [{"name": "ZONE", "fields": ["labels['zone']"], "description": "", "regexes": []},
            {"name": "CLUSTER", "fields": ["placement.managedCluster.clusterName"], "description": "", "regexes": []}]
    body = template_to_dataproc("wf", cfg(["--granularity=DAY"], params=user), lambda m: m)
    assert instantiate_values(body) == {"ZONE": "a", "CLUSTER": "c1", "FO_EXECUTION_TYPE": "--execution_type=delta",
                                        "FO_LEASE": "--lease=scheduled", "FO_PERIOD": "--period=current"}
    values = instantiate_values(body, lease="tok123", extra_args=["--execution_type=full", "--period=2024-01-01"],
                                values={"ZONE": "b"})
    assert values == {"ZONE": "b", "CLUSTER": "c1", "FO_EXECUTION_TYPE": "--execution_type=full",
                      "FO_LEASE": "--lease=tok123", "FO_PERIOD": "--period=2024-01-01"}
    ran = substitute(body, values)
    assert ran["jobs"][0]["pysparkJob"]["args"][-3:] == ["--execution_type=full", "--lease=tok123",
                                                         "--period=2024-01-01"]
    assert ran["labels"]["zone"] == "b" and body["labels"]["zone"] == "a"  # a copy: the template stays
    with pytest.raises(UsageError, match="can only vary --execution_type"):
        instantiate_values(body, extra_args=["--granularity=MONTH"], workflow="wf")
    with pytest.raises(UsageError, match="can only vary"):
        instantiate_values(body, extra_args=["--period=2024-1"], workflow="wf")


@pytest.mark.parametrize("path", ["jobs['nope'].pysparkJob.args[0]", "jobs['flows'].pySparkJob.args[0]",
                                  "jobs['flows'].pysparkJob.args[99]", "labels['missing']"])
def test_a_path_that_names_nothing_is_a_key_error(path) -> None:
    body = template_to_dataproc("wf", cfg([]), lambda m: m)
    with pytest.raises(KeyError, match="does not resolve"):
        field_value(body, path)


def test_a_malformed_path_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="malformed"):
        field_value({}, "jobs[flows].args")
