"""`environments:` overlays, `${VAR}` interpolation and YAML 1.2 scalars in the project file (issue 15).

On main none of this existed: an `environments:` key was an unknown field, `${VAR}` stayed text,
and PyYAML's 1.1 rules turned `country: NO` into false and `010` into 8.
"""

from __future__ import annotations

import textwrap

import pytest

from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project
from funnelops.spec.resolved import environment_problems

BASE = textwrap.dedent("""\
    project:
      id: acme-base
      region: us-east1
    variables:
      env: dev
      country: "NO"
    buckets:
      - {name: acme-dev-raw, role: raw}
      - {name: acme-dev-trusted, role: trusted}
    datasets:
      - {id: crm_trusted}
    tables:
      - {dataset: crm_trusted, name: leads, schema: [{name: id, type: STRING}], description: base}
    workflows:
      - name: crm-daily
        granularity: DAY
        args: ["--granularity=DAY"]
        jobs: [{step_id: flows}]
      - name: crm-monthly
        granularity: MONTH
        args: ["--granularity=MONTH"]
        jobs: [{step_id: flows}]
    schedulers:
      - {name: daily, id: daily, cron: "0 6 * * *", workflow: crm-daily}
""")

OVERLAYS = textwrap.dedent("""\
    environments:
      dev: {}
      prod:
        project: {id: acme-prod}
        variables: {env: prod}
        buckets:
          - {name: acme-dev-raw, labels: {tier: gold}}
          - {name: acme-prod-extra, role: other}
        tables:
          - {dataset: crm_trusted, name: leads, description: prod}
        workflows:
          - name: crm-monthly
            args: ["--granularity=MONTH", "--strict=true"]
            placement: {workers: 6}
        schedulers:
          - {name: daily, paused: true}
""")


def _load(write_project, text: str, env: str | None = None, environ: dict[str, str] | None = None):
    return load_project(write_project(text), env=env, environ=environ or {})


def _problems(write_project, text: str, env: str | None = None, environ: dict[str, str] | None = None):
    with pytest.raises(ProjectError) as info:
        _load(write_project, text, env, environ)
    return info.value.problems


# -- overlays -------------------------------------------------------------------------------------
def test_without_env_the_base_is_used_as_written(write_project) -> None:
    loaded = _load(write_project, BASE + OVERLAYS)
    assert loaded.env is None and loaded.environments == ("dev", "prod")
    assert loaded.spec.project.id == "acme-base"
    assert loaded.spec.workflow("crm-monthly").placement.workers == 2


def test_prod_overlay_deep_merges_maps_named_lists_and_scalars(write_project) -> None:
    spec = _load(write_project, BASE + OVERLAYS, env="prod").spec
    # mappings merge key by key: the id is replaced, the region kept
    assert (spec.project.id, spec.project.region, spec.project.environment) == ("acme-prod", "us-east1", "prod")
    assert dict(spec.variables) == {"env": "prod", "country": "NO"}
    # lists of named items merge by name: the raw bucket keeps its role and gains labels; a new one is appended
    assert [(b.name, b.role, dict(b.labels)) for b in spec.buckets] == [
        ("acme-dev-raw", "raw", {"tier": "gold"}), ("acme-dev-trusted", "trusted", {}),
        ("acme-prod-extra", "other", {})]
    # tables by dataset + name: the schema stays, the description is the overlay's
    table = spec.tables[0]
    assert (table.description, [c.name for c in table.schema_ or []]) == ("prod", ["id"])
    daily, monthly = spec.workflow("crm-daily"), spec.workflow("crm-monthly")
    assert daily.placement.workers == 2 and list(daily.args) == ["--granularity=DAY"]
    # other lists are replaced; a nested map merges
    assert list(monthly.args) == ["--granularity=MONTH", "--strict=true"]
    assert (monthly.placement.workers, monthly.granularity, monthly.jobs[0].step_id) == (6, "MONTH", "flows")
    assert spec.schedulers[0].paused is True and spec.schedulers[0].cron == "0 6 * * *"


def test_an_empty_overlay_is_the_base_with_its_label(write_project) -> None:
    base = _load(write_project, BASE + OVERLAYS).spec
    dev = _load(write_project, BASE + OVERLAYS, env="dev").spec
    assert dev.project.environment == "dev"
    assert dev.model_dump(exclude={"project"}) == base.model_dump(exclude={"project"})


def test_an_error_in_an_overlay_value_points_at_the_overlay_line(write_project) -> None:
    text = BASE + OVERLAYS.replace("placement: {workers: 6}", "placement: {workers: lots}")
    problems = _problems(write_project, text, env="prod")
    overlay_line = text.splitlines().index("        placement: {workers: lots}") + 1
    assert [(p.line, p.field) for p in problems] == [(overlay_line, "workflows[crm-monthly].placement.workers")]
    # dev does not merge prod's overlay: it loads
    assert _load(write_project, text, env="dev").spec.project.id == "acme-base"


def test_an_unknown_field_in_an_overlay_is_located_there(write_project) -> None:
    text = BASE + OVERLAYS.replace("    project: {id: acme-prod}", "    project: {id: acme-prod, zone: x}")
    problems = _problems(write_project, text, env="prod")
    assert [(p.line, p.field, p.message) for p in problems] == [
        (text.splitlines().index("    project: {id: acme-prod, zone: x}") + 1, "project.zone", "unknown field")]


def test_unknown_environment_is_a_located_error_listing_the_declared_ones(write_project) -> None:
    text = BASE + OVERLAYS
    (problem,) = _problems(write_project, text, env="staging")
    assert problem.line == text.splitlines().index("environments:") + 1
    assert "unknown environment 'staging'" in problem.message and "dev, prod" in problem.message
    assert "dev, prod" in (problem.hint or "")
    (none,) = _problems(write_project, BASE, env="prod")
    assert "declares no environments" in none.message


@pytest.mark.parametrize("block, message", [
    ("environments: [dev, prod]\n", "must be a mapping"),
    ("environments:\n  Prod_1: {}\n", "environment name"),
    ("environments:\n  prod: [1]\n", "must be a mapping"),
    ("environments:\n  prod: {environments: {}}\n", "cannot declare environments"),
])
def test_a_malformed_environments_block_is_located(write_project, block: str, message: str) -> None:
    text = BASE + block
    problems = _problems(write_project, text)
    assert any(message in p.message and p.line is not None and p.line > BASE.count("\n") for p in problems), problems


# -- interpolation ------------------------------------------------------------------------------
INTERP = textwrap.dedent("""\
    project:
      id: ${GCP_PROJECT}
      service_account: ${SA:-workflows}@${GCP_PROJECT}.iam.gserviceaccount.com
    variables:
      region_name: ${REGION_NAME:-north}
      literal: "$${NOT_A_VAR}"
      payload: ${PAYLOAD:-none}
      where: ${FUNNELOPS_ENV:-base}
    environments:
      prod: {}
""")


def test_interpolation_set_default_escape_and_env_name(write_project) -> None:
    loaded = _load(write_project, INTERP, env="prod", environ={"GCP_PROJECT": "acme-prod", "SA": "",
                                                               "PAYLOAD": "a: b\n- c"})
    assert loaded.spec.project.id == "acme-prod"
    # an empty variable takes the default, as `${SA:-x}` does in a shell
    assert loaded.spec.project.service_account == "workflows@acme-prod.iam.gserviceaccount.com"
    # a value never becomes YAML structure: it is one string
    assert dict(loaded.spec.variables) == {"region_name": "north", "literal": "${NOT_A_VAR}",
                                           "payload": "a: b\n- c", "where": "prod"}
    assert _load(write_project, INTERP, environ={"GCP_PROJECT": "acme-dev"}).spec.variables["where"] == "base"


def test_the_spec_hash_covers_interpolated_values(write_project) -> None:
    one = _load(write_project, INTERP, environ={"GCP_PROJECT": "acme-one"}).spec_hash
    two = _load(write_project, INTERP, environ={"GCP_PROJECT": "acme-two"}).spec_hash
    assert one != two


def test_an_unset_variable_is_a_located_error_naming_it(write_project) -> None:
    problems = _problems(write_project, INTERP)
    assert [(p.line, p.field) for p in problems] == [(2, "project.id"), (3, "project.service_account")]
    assert all("the variable GCP_PROJECT is not set" in p.message for p in problems)
    assert "variable group" in (problems[0].hint or "") and "${GCP_PROJECT:-value}" in (problems[0].hint or "")


def test_an_unset_variable_in_an_overlay_points_at_the_overlay(write_project) -> None:
    text = BASE + "environments:\n  prod:\n    project: {id: \"${PROD_PROJECT}\"}\n"
    (problem,) = _problems(write_project, text, env="prod")
    assert (problem.line, problem.field) == (text.count("\n"), "project.id")
    assert "PROD_PROJECT" in problem.message


def test_a_malformed_reference_is_located(write_project) -> None:
    text = BASE.replace('country: "NO"', 'country: "${1X}"')
    (problem,) = _problems(write_project, text)
    assert (problem.line, problem.field) == (6, "variables.country") and "not a reference" in problem.message


# -- YAML 1.2 -----------------------------------------------------------------------------------
YAML12 = textwrap.dedent("""\
    project: {id: acme-yaml}
    variables:
      country: NO
      a: yes
      b: no
      c: on
      d: off
      e: y
      f: n
      octal: 010
      octal12: 0o10
      hex: 0x1F
      clock: 1:30
      day: 2024-01-01
      t1: true
      t2: True
      t3: TRUE
      quoted: "NO"
      ratio: 1e3
    notifications:
      channels: [{type: slack, url_env: SLACK_URL, on: [failed]}]
""")


def test_yaml_12_scalars(write_project) -> None:
    loaded = _load(write_project, YAML12)
    v = dict(loaded.spec.variables)
    assert {k: v[k] for k in "abcdef"} == {"a": "yes", "b": "no", "c": "on", "d": "off", "e": "y", "f": "n"}
    assert v["country"] == "NO" and v["quoted"] == "NO"
    assert (v["octal"], v["octal12"], v["hex"]) == (10, 8, 31)
    assert (v["clock"], v["day"], v["ratio"]) == ("1:30", "2024-01-01", 1000.0)
    assert (v["t1"], v["t2"], v["t3"]) == (True, True, True)
    assert loaded.spec.notifications is not None and loaded.spec.notifications.channels[0].on == ["failed"]


def test_yaml_11_differences_are_noted_with_their_lines(write_project) -> None:
    notes = {n.field: n for n in _load(write_project, YAML12).notes}
    assert set(notes) == {f"variables.{k}" for k in ("country", "a", "b", "c", "d", "e", "f", "octal", "octal12", "clock",
                                                     "day", "ratio")}
    country = notes["variables.country"]
    assert country.line == 3 and country.hint == "quote it to make that explicit"
    assert country.message == "'NO' is the string \"NO\" (YAML 1.2); a YAML 1.1 tool would read false"
    assert "would read 8" in notes["variables.octal"].message
    assert "would read the string \"0o10\"" in notes["variables.octal12"].message
    assert "would read 90" in notes["variables.clock"].message
    assert "the date 2024-01-01" in notes["variables.day"].message


# -- names across environments -------------------------------------------------------------------
def test_a_bucket_shared_by_two_environments_is_an_error_naming_both(write_project) -> None:
    text = BASE + "environments:\n  dev: {}\n  prod:\n    project: {id: acme-prod}\n"
    problems = environment_problems(_load(write_project, text))
    assert [(p.line, p.field) for p in problems] == [(8, "buckets[acme-dev-raw].name"), (9, "buckets[acme-dev-trusted].name")]
    assert "bucket 'acme-dev-raw' is the same in environments dev and prod" == problems[0].message
    assert "${FUNNELOPS_ENV}" in (problems[0].hint or "")


def test_same_gcp_project_needs_distinct_datasets_templates_and_scheduler_ids(write_project) -> None:
    text = BASE.replace("acme-dev-", "acme-${FUNNELOPS_ENV}-").replace("{name: acme", "{name: \"acme").replace(
        "-raw,", "-raw\",").replace("-trusted,", "-trusted\",") + "environments:\n  dev: {}\n  prod: {}\n"
    fields = sorted(p.field for p in environment_problems(_load(write_project, text, env="dev")))
    assert fields == ["datasets[crm_trusted].id", "schedulers[daily].id", "workflows[crm-daily].name",
                      "workflows[crm-monthly].name"]
    separate = text.replace("  prod: {}", "  prod: {project: {id: acme-prod}}")
    assert environment_problems(_load(write_project, separate, env="dev")) == []


def test_a_name_fed_by_a_variable_is_not_judged(write_project) -> None:
    text = (BASE.replace("{name: acme-dev-raw,", "{name: \"${RAW_BUCKET}\",")
            .replace("{name: acme-dev-trusted,", "{name: \"acme-${FUNNELOPS_ENV}-trusted\",")
            + "environments:\n  dev: {}\n  prod: {project: {id: acme-prod}}\n")
    assert environment_problems(_load(write_project, text, env="dev", environ={"RAW_BUCKET": "acme-raw"})) == []


def test_the_example_of_docs_environments_md_loads_in_dev_and_prod(tmp_path) -> None:
    """The first YAML block of docs/environments.md is a working project (its text is the contract)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[3] / "docs" / "environments.md").read_text(encoding="utf-8")
    path = tmp_path / "funnel.yaml"
    path.write_text(re.findall(r"```yaml\n(.*?)```", doc, re.S)[0], encoding="utf-8")
    dev = load_project(path, env="dev", environ={})
    prod = load_project(path, env="prod", environ={"PROD_PROJECT_ID": "acme-crm-prod"})
    assert [b.name for b in dev.spec.buckets][0] == "acme-crm-dev-raw"
    assert [b.name for b in prod.spec.buckets][0] == "acme-crm-prod-raw"
    assert prod.spec.project.artifacts_bucket == "acme-crm-prod-artifacts"
    assert (dev.spec.schedulers[0].paused, prod.spec.schedulers[0].paused) == (True, False)
    assert prod.spec.workflows[0].placement.workers == 8 and dev.spec.variables["country"] == "NO"
    assert environment_problems(prod) == []
    with pytest.raises(ProjectError) as info:
        load_project(path, env="prod", environ={})
    assert [p.field for p in info.value.problems] == ["project.id", "project.service_account"]


def test_a_run_end_notification_reads_the_runs_environment(write_project, monkeypatch) -> None:
    """The supervisor reads `notifications:` and the project id alone, in the run's environment."""
    from funnelops.notify import notifications_of

    text = BASE + OVERLAYS.replace("    project: {id: acme-prod}", "    project: {id: acme-prod}\n    notifications:\n"
                                   "      channels: [{type: slack, url_env: PROD_SLACK}]")
    path = write_project(text)
    monkeypatch.setenv("FUNNELOPS_ENV", "prod")
    notifications, project = notifications_of(path)
    assert project == "acme-prod" and notifications is not None
    assert notifications.channels[0].url_env == "PROD_SLACK"
    monkeypatch.setenv("FUNNELOPS_ENV", "staging")  # not declared: the base
    assert notifications_of(path) == (None, "acme-base")
