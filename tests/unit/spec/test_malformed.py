"""Malformed projects: every problem names the right file, line and field, all at once.

Each case is a small funnel.yaml; the line the problem must be reported on ends with `#<`
(placed by hand), and the case says which field and which words the message must carry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project



def marked_line(text: str) -> int | None:
    """The 1-based line carrying the `#<` marker: where the test says the problem is."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if line.rstrip().endswith("#<")]
    assert len(hits) <= 1, "a case marks at most one line"
    return hits[0] if hits else None


P = "project:\n  id: demo-project\n"
DS = "datasets:\n  - id: ds\n"
WF = "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n      - step_id: step-one\n"
TABLE = ("tables:\n  - dataset: ds\n    name: t1\n    schema:\n"
         "      - {name: day, type: DATE}\n      - {name: n, type: INT64}\n")


@dataclass
class Case:
    id: str
    text: str
    field: str  # substring of the problem's field
    says: str  # substring (case-insensitive) of message + hint
    files: dict[str, str] = field(default_factory=dict)


CASES = [
    # --- unknown fields, with "did you mean" -------------------------------------------------
    Case("unknown-top-level", P + "buckts: []  #<\n", "buckts", "did you mean 'buckets'"),
    Case("unknown-bucket-field", P + "buckets:\n  - name: demo-raw\n    storage_clas: STANDARD  #<\n",
         "buckets[demo-raw].storage_clas", "did you mean 'storage_class'"),
    Case("unknown-project-field", "project:\n  id: demo-project\n  regoin: us-east1  #<\n",
         "project.regoin", "did you mean 'region'"),
    Case("unknown-inline-column-field",
         P + DS + "tables:\n  - dataset: ds\n    name: t1\n    schema:\n"
         "      - {name: day, type: DATE, mdoe: REQUIRED}  #<\n",
         "tables[t1].schema[day].mdoe", "did you mean 'mode'"),
    Case("unknown-job-field",
         P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n      - step_id: step-one\n"
         "        prerequisite: [x]  #<\n",
         "workflows[wf-day].jobs[step-one].prerequisite", "did you mean 'prerequisites'"),
    Case("unknown-retry-field",
         P + WF + 'schedulers:\n  - name: Día\n    id: dia\n    cron: "0 6 * * *"\n    workflow: wf-day\n'
         "    retry: {retry_cnt: 2}  #<\n",
         "schedulers[Día].retry.retry_cnt", "did you mean 'retry_count'"),
    # --- missing required fields -------------------------------------------------------------
    Case("missing-project-id", "project:  #<\n  region: us-east1\n", "project.id", "required"),
    Case("missing-project", "buckets: []  #<\n", "project", "required"),
    Case("missing-bucket-name", P + "buckets:\n  - location: US  #<\n", "buckets[0].name", "required"),
    Case("missing-granularity",
         P + "workflows:\n  - name: wf-day  #<\n    jobs:\n      - step_id: step-one\n",
         "workflows[wf-day].granularity", "required"),
    Case("missing-jobs", P + "workflows:\n  - name: wf-day  #<\n    granularity: DAY\n",
         "workflows[wf-day].jobs", "required"),
    Case("empty-jobs", P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs: []  #<\n",
         "workflows[wf-day].jobs", "at least 1"),
    Case("missing-scheduler-cron", P + WF + "schedulers:\n  - {name: Día, id: dia, workflow: wf-day}  #<\n",
         "schedulers[Día].cron", "required"),
    # --- identifiers and names ---------------------------------------------------------------
    Case("dataset-id-dash", P + "datasets:\n  - id: my-ds  #<\n", "datasets[my-ds].id", "pattern"),
    Case("table-name-space",
         P + DS + "tables:\n  - dataset: ds\n    name: \"bad name\"  #<\n    schema: [{name: a, type: DATE}]\n",
         "tables[bad name].name", "pattern"),
    Case("column-name-quote",
         P + DS + "tables:\n  - dataset: ds\n    name: t1\n    schema:\n      - {name: \"a'b\", type: DATE}  #<\n",
         "schema[a'b].name", "pattern"),
    Case("bucket-uppercase", P + "buckets:\n  - name: Demo_Raw  #<\n", "buckets[Demo_Raw].name", "pattern"),
    Case("bucket-too-short", P + "buckets:\n  - name: ab  #<\n", "buckets[ab].name", "pattern"),
    Case("bucket-slash", P + "buckets:\n  - name: demo/raw  #<\n", "buckets[demo/raw].name", "pattern"),
    Case("project-id-pattern", "project:\n  id: X  #<\n", "project.id", "pattern"),
    Case("scheduler-id-uppercase", P + WF + 'schedulers:\n  - name: Día\n    id: Dia  #<\n'
         '    cron: "0 6 * * *"\n    workflow: wf-day\n', "schedulers[Día].id", "pattern"),
    Case("label-key-uppercase", P + "buckets:\n  - name: demo-raw\n    labels: {Layer: raw}  #<\n",
         "buckets[demo-raw].labels.Layer", "'Layer' is not allowed here"),
    Case("variable-key-dash", "project:\n  id: demo-project\nvariables:\n  bad-key: x  #<\n",
         "variables.bad-key", "'bad-key' is not allowed here"),
    Case("template-arg-not-flag",
         P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    args: [\"granularity=DAY\"]  #<\n"
         "    jobs:\n      - step_id: step-one\n", "workflows[wf-day].args[0]", "pattern"),
    Case("stage-arg-not-flag", P + "stages:\n  iac: [\"refined_flows=false\"]  #<\n", "stages.iac[0]", "pattern"),
    Case("dag-timeout-units",
         P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    dag_timeout: 1h  #<\n"
         "    jobs:\n      - step_id: step-one\n", "workflows[wf-day].dag_timeout", "pattern"),
    Case("granularity-literal",
         P + "workflows:\n  - name: wf-day\n    granularity: WEEK  #<\n    jobs:\n      - step_id: step-one\n",
         "workflows[wf-day].granularity", "'day', 'month' or 'year'"),
    # --- duplicates ----------------------------------------------------------------------------
    Case("duplicate-yaml-key", "project:\n  id: demo-project\n  id: other-project  #<\n",
         "project.id", "duplicate key"),
    Case("duplicate-bucket", P + "buckets:\n  - name: demo-raw\n  - name: demo-raw  #<\n",
         "buckets[demo-raw]", "first defined on line 4"),
    Case("duplicate-dataset", P + "datasets:\n  - id: ds\n  - id: ds  #<\n", "datasets[ds]", "duplicate dataset"),
    Case("duplicate-table-and-view",
         P + DS + TABLE + "views:\n  - dataset: ds\n    name: t1  #<\n    query: SELECT 1 AS x\n",
         "t1", "duplicate table or view"),
    Case("duplicate-workflow",
         P + WF + "  - name: wf-day  #<\n    granularity: DAY\n    jobs:\n      - step_id: step-one\n",
         "workflows[wf-day]", "duplicate workflow"),
    Case("duplicate-scheduler-id",
         P + WF + 'schedulers:\n  - {name: Día, id: dia, cron: "0 6 * * *", workflow: wf-day}\n'
         '  - {name: Otro, id: dia, cron: "0 7 * * *", workflow: wf-day}  #<\n',
         "schedulers[dia]", "duplicate scheduler id"),
    Case("duplicate-step-id",
         P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n      - step_id: step-one\n"
         "      - step_id: step-one  #<\n", "workflows[wf-day].jobs[step-one]", "duplicate step id"),
    Case("duplicate-column",
         P + DS + "tables:\n  - dataset: ds  #<\n    name: t1\n    schema:\n"
         "      - {name: a, type: DATE}\n      - {name: a, type: STRING}\n",
         "tables[t1].schema", "duplicate column 'a'"),
    # --- references, with "did you mean" -------------------------------------------------------
    Case("scheduler-missing-workflow",
         P + WF + 'schedulers:\n  - name: Día\n    id: dia\n    cron: "0 6 * * *"\n    workflow: wf-dya  #<\n',
         "schedulers[Día].workflow", "did you mean 'wf-day'"),
    Case("view-missing-table",
         P + DS + TABLE + "views:\n  - dataset: ds\n    name: v1\n    query: SELECT * FROM ds.t2  #<\n",
         "views[v1].query", "did you mean 'ds.t1'"),
    Case("view-missing-table-backticks",
         P + DS + TABLE + "views:\n  - dataset: ds\n    name: v1\n"
         "    query: SELECT * FROM `demo-project.ds.tl`  #<\n", "views[v1].query", "did you mean 'ds.t1'"),
    Case("external-missing-bucket",
         P + "buckets:\n  - name: demo-trusted\n" + DS + "external_tables:\n  - dataset: ds\n    name: leads\n"
         "    bucket: demo-trustd  #<\n    prefix: leads/\n",
         "external_tables[leads].bucket", "did you mean 'demo-trusted'"),
    Case("table-missing-dataset",
         P + DS + "tables:\n  - dataset: dss  #<\n    name: t1\n    schema: [{name: a, type: DATE}]\n",
         "tables[t1].dataset", "did you mean 'ds'"),
    Case("artifacts-bucket-missing",
         "project:\n  id: demo-project\n  artifacts_bucket: demo-artifact  #<\nbuckets:\n  - name: demo-artifacts\n",
         "project.artifacts_bucket", "did you mean 'demo-artifacts'"),
    Case("view-query-file-missing",
         P + DS + "views:\n  - dataset: ds\n    name: v1\n    query_file: sql/v1.sql  #<\n",
         "views[v1].query_file", "not found"),
    Case("view-sql-unparsable", P + DS + "views:\n  - dataset: ds\n    name: v1\n    query: SELECT (  #<\n",
         "views[v1].query", "does not parse"),
    Case("view-sql-unterminated-string",
         P + DS + "views:\n  - dataset: ds\n    name: v1\n    query: \"SELECT 'abc\"  #<\n",
         "views[v1].query", "does not parse"),
    Case("view-cycle",
         P + DS + "views:  #<\n  - {dataset: ds, name: v1, query: SELECT * FROM ds.v2}\n"
         "  - {dataset: ds, name: v2, query: SELECT * FROM ds.v1}\n", "views", "cycle"),
    Case("view-self-cycle",
         P + DS + "views:  #<\n  - {dataset: ds, name: v1, query: SELECT * FROM ds.v1}\n", "views", "cycle"),
    Case("step-prerequisite-unknown",
         P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n      - step_id: load-raw\n"
         "      - step_id: build\n        prerequisites: [load-rwa]  #<\n",
         "workflows[wf-day].jobs[build].prerequisites", "did you mean 'load-raw'"),
    Case("step-prerequisite-cycle",
         P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:  #<\n"
         "      - {step_id: aaa, prerequisites: [bbb]}\n      - {step_id: bbb, prerequisites: [aaa]}\n",
         "workflows[wf-day].jobs", "cycle"),
    # --- cron and time zones -------------------------------------------------------------------
    Case("cron-minute-range", P + WF + 'schedulers:\n  - name: Día\n    id: dia\n    cron: "61 * * * *"  #<\n'
         "    workflow: wf-day\n", "schedulers[Día].cron", "invalid cron"),
    Case("cron-six-fields", P + WF + 'schedulers:\n  - name: Día\n    id: dia\n    cron: "0 0 6 * * *"  #<\n'
         "    workflow: wf-day\n", "schedulers[Día].cron", "5 fields"),
    Case("project-time-zone", "project:\n  id: demo-project\n  time_zone: America/Bogot  #<\n",
         "project.time_zone", "unknown time zone"),
    Case("scheduler-time-zone", P + WF + 'schedulers:\n  - name: Día\n    id: dia\n    cron: "0 6 * * *"\n'
         "    workflow: wf-day\n    time_zone: Mars/Olympus  #<\n", "schedulers[Día].time_zone", "iana"),
    Case("retry-backoff-order", P + WF + 'schedulers:\n  - name: Día\n    id: dia\n    cron: "0 6 * * *"\n'
         "    workflow: wf-day\n    retry: {min_backoff_s: 900, max_backoff_s: 60}  #<\n",
         "schedulers[Día].retry", "min_backoff_s"),
    Case("retry-count-limit", P + WF + 'schedulers:\n  - name: Día\n    id: dia\n    cron: "0 6 * * *"\n'
         "    workflow: wf-day\n    retry:\n      retry_count: 9  #<\n",
         "schedulers[Día].retry.retry_count", "less than or equal to 5"),
    # --- Dataproc limits -----------------------------------------------------------------------
    Case("step-id-too-short", P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n"
         "      - step_id: ab  #<\n", "workflows[wf-day].jobs[ab].step_id", "pattern"),
    Case("step-id-leading-dash", P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n"
         "      - step_id: \"-step\"  #<\n", "jobs[-step].step_id", "pattern"),
    Case("step-id-trailing-underscore", P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n"
         "      - step_id: step_  #<\n", "jobs[step_].step_id", "pattern"),
    Case("step-id-too-long", P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n"
         "      - step_id: " + "s" * 51 + "  #<\n", "step_id", "pattern"),
    Case("parameter-lowercase", P + "workflows:\n  - name: wf-day\n    granularity: DAY\n"
         "    jobs:\n      - step_id: step-one\n    parameters:\n      - name: zone  #<\n        fields: [a]\n",
         "workflows[wf-day].parameters[zone].name", "pattern"),
    Case("parameter-too-long", P + "workflows:\n  - name: wf-day\n    granularity: DAY\n"
         "    jobs:\n      - step_id: step-one\n    parameters:\n      - name: " + "P" * 41 + "  #<\n"
         "        fields: [a]\n", "parameters[" + "P" * 41 + "].name", "pattern"),
    # --- table schemas -------------------------------------------------------------------------
    Case("schema-file-missing", P + DS + "tables:\n  - dataset: ds\n    name: t1\n"
         "    schema_file: schemas/t1.json  #<\n", "tables[t1].schema_file", "not found"),
    Case("schema-file-invalid-json", P + DS + "tables:\n  - dataset: ds\n    name: t1\n"
         "    schema_file: schemas/t1.json  #<\n", "tables[t1].schema_file", "schemas/t1.json:3",
         {"schemas/t1.json": '[\n  {"name": "a", "type": "DATE"},\n  {"name": "b" "type": "DATE"}\n]\n'}),
    Case("schema-file-bad-type", P + DS + "tables:\n  - dataset: ds\n    name: t1\n"
         "    schema_file: schemas/t1.json  #<\n", "tables[t1].schema_file", "unknown bigquery type 'strng'",
         {"schemas/t1.json": '[{"name": "a", "type": "STRNG"}]'}),
    Case("schema-file-not-a-list", P + DS + "tables:\n  - dataset: ds\n    name: t1\n"
         "    schema_file: schemas/t1.json  #<\n", "tables[t1].schema_file", "json list",
         {"schemas/t1.json": '{"name": "a", "type": "DATE"}'}),
    Case("schema-file-outside", P + DS + "tables:\n  - dataset: ds\n    name: t1\n"
         "    schema_file: ../outside.json  #<\n", "tables[t1].schema_file", "outside the project folder"),
    Case("schema-inline-bad-type", P + DS + "tables:\n  - dataset: ds\n    name: t1\n    schema:\n"
         "      - {name: a, type: VARCHAR}  #<\n", "tables[t1].schema[a].type", "unknown bigquery type"),
    Case("schema-record-type", P + DS + "tables:\n  - dataset: ds\n    name: t1\n    schema:\n"
         "      - {name: a, type: RECORD}  #<\n", "tables[t1].schema[a].type", "flatten"),
    Case("schema-and-schema-file", P + DS + "tables:\n  - dataset: ds  #<\n    name: t1\n"
         "    schema: [{name: a, type: DATE}]\n    schema_file: schemas/t1.json\n", "tables[t1]", "exactly one"),
    Case("partition-not-date", P + DS + TABLE + "    partitioning:\n      field: n  #<\n",
         "tables[t1].partitioning.field", "needs date"),
    Case("partition-unknown-column", P + DS + TABLE + "    partitioning: {field: dya}  #<\n",
         "tables[t1].partitioning.field", "did you mean 'day'"),
    Case("clustering-unknown-column", P + DS + TABLE + "    clustering:\n      - n\n      - nn_  #<\n",
         "tables[t1].clustering", "unknown column 'nn_'"),
    Case("clustering-too-many", P + DS + TABLE + "    clustering: [a, b, c, d, e]  #<\n",
         "tables[t1].clustering", "at most 4"),
    # --- other kinds -----------------------------------------------------------------------------
    Case("view-no-query", P + DS + "views:\n  - dataset: ds  #<\n    name: v1\n", "views[v1]", "exactly one"),
    Case("lifecycle-rule-needs-class", P + "buckets:\n  - name: demo-raw\n    lifecycle_rules:\n"
         "      - {action: SetStorageClass, age_days: 30}  #<\n", "buckets[demo-raw].lifecycle_rules[0]",
         "needs storage_class"),
    Case("external-prefix-dotdot", P + "buckets:\n  - name: demo-trusted\n" + DS +
         "external_tables:\n  - dataset: ds\n    name: leads\n    bucket: demo-trusted\n    prefix: ../up/  #<\n",
         "external_tables[leads].prefix", "'..'"),
    Case("bool-where-str-expected", P + "buckets:\n  - name: demo-raw\n    deletion_protection: maybe  #<\n",
         "buckets[demo-raw].deletion_protection", "boolean"),
    # --- the file itself -------------------------------------------------------------------------
    Case("yaml-bad-indent", "project:\n  id: demo-project\n   region: us-east1  #<\n", "(yaml)", "not valid yaml"),
    Case("yaml-tab", "project:\n  id: demo-project\n\tregion: x  #<\n", "(yaml)", "not valid yaml"),
    Case("yaml-unclosed-flow", "project: {id: demo-project\nbuckets: []  #<\n", "(yaml)", "not valid yaml"),
    Case("yaml-python-tag-mapping", "project: !!python/object:os.system {}  #<\n", "project", "tag"),
    Case("yaml-python-tag-scalar", "project:\n  id: !!python/name:os.system  #<\n", "(yaml)", "not valid yaml"),
    Case("yaml-recursive-alias", "project: &a [*a]  #<\n", "project", "alias"),
    Case("top-level-list", "- project  #<\n- buckets\n", "(top)", "must be a mapping"),
    Case("top-level-scalar", "just words  #<\n", "(top)", "must be a mapping"),
    Case("empty-file", "", "(top)", "must be a mapping"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_malformed_project_names_line_and_field(case: Case, write_project) -> None:
    path = write_project(case.text, case.files)
    with pytest.raises(ProjectError) as info:
        load_project(path)
    problems = info.value.problems
    assert len(problems) == 1, [p.render() for p in problems]
    p = problems[0]
    expected_line = marked_line(case.text)
    if case.id == "empty-file":
        expected_line = 1
    assert p.file == str(path)
    assert p.line == expected_line, p.render()
    assert case.field in p.field, p.render()
    assert case.says.lower() in f"{p.message} {p.hint or ''}".lower(), p.render()
    # the rendered form leads with file:line, as editors and CI logs expect
    assert p.render().startswith(f"{path}:{expected_line}: ")


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


def test_all_field_problems_are_reported_at_once(write_project) -> None:
    text = ("project:\n  id: demo-project\n"
            "buckets:\n  - name: Bad_Name\n"          # line 4: pattern
            "    colour: red\n"                       # line 5: unknown field
            "datasets:\n  - description: no id\n")    # line 7: missing id
    path = write_project(text)
    with pytest.raises(ProjectError) as info:
        load_project(path)
    got = sorted((p.line, p.field) for p in info.value.problems)
    assert got == [(4, "buckets[Bad_Name].name"), (5, "buckets[Bad_Name].colour"), (7, "datasets[0].id")]


def test_all_reference_problems_are_reported_at_once(write_project) -> None:
    text = (P + DS + WF +
            'schedulers:\n  - {name: Día, id: dia, cron: "0 6 * * *", workflow: nope}\n'  # line 11
            '  - {name: Mes, id: mes, cron: "bad", workflow: wf-day}\n'  # line 12
            "views:\n  - {dataset: nods, name: v1, query: SELECT 1 AS x}\n")  # line 14
    path = write_project(text)
    with pytest.raises(ProjectError) as info:
        load_project(path)
    got = sorted((p.line, p.field) for p in info.value.problems)
    assert got == [(11, "schedulers[Día].workflow"), (12, "schedulers[Mes].cron"), (14, "views[v1].dataset")]
    assert "3 problems" in info.value.message


def test_missing_project_file_is_a_located_error(tmp_path) -> None:
    with pytest.raises(ProjectError) as info:
        load_project(tmp_path / "nope.yaml")
    (p,) = info.value.problems
    assert p.file.endswith("nope.yaml") and p.line is None


def test_undecodable_sql_file_is_a_located_error(write_project, tmp_path) -> None:
    text = P + DS + "views:\n  - dataset: ds\n    name: v1\n    query_file: v1.sql  #<\n"
    path = write_project(text)
    (tmp_path / "v1.sql").write_bytes(b"SELECT \xff\xfe 1")
    with pytest.raises(ProjectError) as info:
        load_project(path)
    (p,) = info.value.problems
    assert p.line == 8 == marked_line(text) and p.field == "views[v1].query_file"


BAD_FOR_CLI = ("project:\n  id: demo-project\n  regoin: us-east1\n"   # line 3
               "buckets:\n  - name: x\n")                               # line 5


def test_cli_prints_every_problem_with_exit_2_and_no_traceback(write_project, capsys) -> None:
    from funnelops.cli.main import main

    path = write_project(BAD_FOR_CLI)
    code = main(["--project", str(path), "validate"])
    out = capsys.readouterr()
    assert code == 2
    assert f"{path}:3: project.regoin: unknown field" in out.err
    assert f"{path}:5: " in out.err
    assert "did you mean 'region'" in out.err
    assert "2 problems" in out.err
    assert "Traceback" not in out.err + out.out


def test_cli_prints_fields_and_patterns_verbatim(write_project, capsys) -> None:
    from funnelops.cli.main import main

    path = write_project(BAD_FOR_CLI)
    assert main(["--project", str(path), "validate"]) == 2
    err = capsys.readouterr().err
    assert f"{path}:5: buckets[x].name" in err
    assert "[a-z0-9]" in err


def test_cli_json_lists_problems(write_project, capsys) -> None:
    from funnelops.cli.main import main

    path = write_project("project:\n  id: demo-project\nbuckets:\n  - name: x\n")
    code = main(["--json", "--project", str(path), "validate"])
    out = capsys.readouterr()
    assert code == 2
    doc = json.loads(out.out)
    assert doc["error"] == "invalid_project" and doc["exit_code"] == 2
    assert [(p["line"], p["field"]) for p in doc["problems"]] == [(4, "buckets[x].name")]
