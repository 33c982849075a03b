"""`--env` on the command line (issue 15): selection, homes, validate's resolved values, plans per environment.

The fixture is a project made by `funnelops init` with names written per environment and an
`environments:` block: dev and prod in two GCP projects, prod with another `country`, a bigger
monthly cluster and the daily scheduler paused. On main `--env` did not exist, and `country: NO`
reached the templates as `--country=false`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from funnelops.cli.main import main as cli_main

OVERLAYS = """
environments:
  dev:
    project: {id: acme-funnel-dev, service_account: workflows@acme-funnel-dev.iam.gserviceaccount.com}
  prod:
    project: {id: acme-funnel-prod, service_account: workflows@acme-funnel-prod.iam.gserviceaccount.com}
    variables: {env: prod, country: SE}
    workflows:
      - {name: SLUG-monthly, placement: {workers: 6}}
    schedulers:
      - {name: daily, paused: true}
"""


@pytest.fixture
def cli(monkeypatch, capsys):
    for name in ("FUNNELOPS_PROJECT", "FUNNELOPS_HOME", "FUNNELOPS_BACKEND", "FUNNELOPS_ENV"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")

    def run(*args: str, as_json: bool = True) -> tuple[int, Any, str]:
        capsys.readouterr()
        code = cli_main((["--json"] if as_json else []) + list(args))
        out = capsys.readouterr()
        try:
            return code, json.loads(out.out), out.err
        except ValueError:
            return code, out.out, out.err

    return run


@pytest.fixture
def project(tmp_path: Path, cli, monkeypatch) -> Path:
    """`funnelops init` + bucket names per environment + `country: NO` + the overlays above."""
    folder = tmp_path / "envs"
    code, _, err = cli("init", str(folder), as_json=False)
    assert code == 0, err
    path = folder / "funnel.yaml"
    text = path.read_text(encoding="utf-8")
    slug = re.search(r"artifacts_bucket: (\S+)-artifacts", text).group(1)  # type: ignore[union-attr]
    text = re.sub(rf"(?<![\w\"]){slug}-(raw|trusted|refined|artifacts)\b",
                  lambda m: f'"{slug}-${{FUNNELOPS_ENV}}-{m.group(1)}"', text)
    text = text.replace("variables:\n  env: dev\n", "variables:\n  env: dev\n  country: NO\n")
    assert "country: NO" in text
    path.write_text(text + OVERLAYS.replace("SLUG", slug), encoding="utf-8")
    monkeypatch.chdir(folder)
    return path


@pytest.mark.parametrize("with_environments", [False, True])
def test_country_no_reaches_the_templates_as_no(project: Path, cli, tmp_path: Path, with_environments: bool) -> None:
    """Fails on main (the case without environments): YAML 1.1 read `NO` as false and the template
    said --country=false."""
    env: tuple[str, ...] = ("--env", "dev") if with_environments else ()
    if not with_environments:  # the project as `init` writes it, plus `country: NO`
        text = project.read_text(encoding="utf-8")
        text = text[:text.index("\nenvironments:")].replace("${FUNNELOPS_ENV}", "dev")
        project.write_text(text.replace("\n  id: ", "\n  service_account: w@x.iam.gserviceaccount.com\n  id: ", 1),
                           encoding="utf-8")
    saved = tmp_path / "plan.json"
    code, doc, err = cli("--home", str(tmp_path / "h"), *env, "plan", "-out", str(saved))
    assert code == 0, err
    args = {tuple(c["after"]["jobs"][0]["args"]) for c in json.loads(saved.read_text())["changes"]
            if c["address"].startswith("workflow_template.")}
    assert args and all("--country=NO" in a and "--env=dev" in a for a in args), args
    code, text, err = cli("--home", str(tmp_path / "h"), "validate", *env, as_json=False)
    assert code == 0, err
    assert re.search(r"funnel\.yaml:\d+: variables\.country: 'NO' is the string \"NO\" \(YAML 1\.2\); a YAML 1\.1 "
                     r"tool would read false \(quote it to make that explicit\)", text), text


def test_validate_names_the_environment_and_shows_resolved_values(project: Path, cli, tmp_path: Path) -> None:
    code, doc, err = cli("--home", str(tmp_path / "h"), "--env", "prod", "validate")
    assert code == 0, err
    assert doc["env"] == "prod" and doc["environments"] == ["dev", "prod"]
    assert doc["resolved"]["project"]["id"] == "acme-funnel-prod"
    assert doc["resolved"]["variables"]["country"] == "SE"
    summary = doc["summary"]
    assert summary["project_id"] == "acme-funnel-prod" and all("-prod-" in b["name"] for b in summary["buckets"])
    assert {s["name"]: s["paused"] for s in summary["schedulers"]}["daily"] is True
    assert max(c["workers"] for c in summary["clusters"]) == 6
    assert "environments" not in doc["resolved"]
    code, text, err = cli("--home", str(tmp_path / "h"), "validate", "--env=prod", as_json=False)
    assert code == 0, err
    assert "Resolved (environment prod):" in text and "acme-funnel-prod" in text and "daily paused" in text
    assert "(environment prod) is valid" in text


def test_unknown_env_exits_2_with_the_declared_ones(project: Path, cli, tmp_path: Path) -> None:
    code, doc, err = cli("--home", str(tmp_path / "h"), "--env", "staging", "validate")
    assert code == 2 and "Traceback" not in err
    (problem,) = doc["problems"]
    assert problem["field"] == "environments" and problem["line"] and "dev, prod" in problem["message"]


def test_an_unset_variable_exits_2_located(project: Path, cli, tmp_path: Path) -> None:
    text = project.read_text(encoding="utf-8").replace("{id: acme-funnel-prod,", '{id: "${PROD_GCP_ID}",')
    project.write_text(text, encoding="utf-8")
    code, doc, err = cli("--home", str(tmp_path / "h"), "--env", "prod", "validate")
    assert code == 2 and "Traceback" not in err
    (problem,) = doc["problems"]
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "PROD_GCP_ID" in row)
    assert (problem["line"], problem["field"]) == (line, "project.id") and "PROD_GCP_ID" in problem["message"]


def test_validate_refuses_a_bucket_two_environments_share(project: Path, cli, tmp_path: Path) -> None:
    text = project.read_text(encoding="utf-8")
    project.write_text(text.replace("-${FUNNELOPS_ENV}-raw", "-shared-raw"), encoding="utf-8")
    code, doc, err = cli("--home", str(tmp_path / "h"), "--env", "dev", "validate")
    assert code == 2
    (problem,) = doc["problems"]
    assert problem["field"].startswith("buckets[") and problem["field"].endswith("-shared-raw].name") and "same in environments dev and prod" in problem["message"]
    assert "${FUNNELOPS_ENV}" in problem["hint"]


def test_each_environment_has_its_own_home(project: Path, cli, tmp_path: Path) -> None:
    home = tmp_path / "h"
    (project.parent / "funnelops.toml").write_text(f'project = "funnel.yaml"\nhome = "{home}"\nenv = "dev"\n')
    code, dev, err = cli("status")
    assert code == 0, err
    assert (dev["env"], dev["home"]) == ("dev", str(home / "env" / "dev"))
    code, prod, err = cli("--env", "prod", "status")  # the flag wins over the file
    assert code == 0, err
    assert (prod["env"], prod["home"], prod["project"]) == ("prod", str(home / "env" / "prod"), "acme-funnel-prod")


def test_a_plan_saved_for_prod_is_refused_in_dev(project: Path, cli, tmp_path: Path) -> None:
    saved = tmp_path / "prod.json"
    code, doc, err = cli("--home", str(tmp_path / "h"), "--env", "prod", "plan", "-out", str(saved))
    assert code == 0 and doc["env"] == "prod", err
    assert json.loads(saved.read_text())["env"] == "prod"
    code, doc, _ = cli("--home", str(tmp_path / "h"), "--env", "dev", "apply", str(saved))
    assert code == 2 and "was planned for environment prod, not environment dev" in doc["message"]
    assert doc["hint"] == "apply it with --env prod"


def _flat(value: Any, path: tuple = ()) -> dict[tuple, Any]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, path + (key,)).items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, path + (i,)).items()}
    return {path: value}


def _offline(cli, env: str, home: Path) -> dict[str, Any]:
    code, doc, err = cli("--home", str(home), "--backend", "gcp", "--env", env, "plan", "--refresh=false")
    assert code == 0, err
    assert doc["env"] == env
    return doc


def test_dev_and_prod_plans_differ_only_where_the_overlay_says(project: Path, cli, tmp_path: Path) -> None:
    pytest.importorskip("google.cloud.storage")
    dev, prod = _offline(cli, "dev", tmp_path / "h"), _offline(cli, "prod", tmp_path / "h")

    def rename(value: Any) -> Any:
        """What the overlay and `${FUNNELOPS_ENV}` change by name: dev's names become prod's."""
        if not isinstance(value, str):
            return value
        return (value.replace("acme-funnel-dev", "acme-funnel-prod").replace("-dev-", "-prod-")
                .replace("--env=dev", "--env=prod").replace("--country=NO", "--country=SE"))

    def key(address: str) -> str:
        return rename(address)

    a = {key(r["address"]): r for r in dev["resources"]}
    b = {r["address"]: r for r in prod["resources"]}
    assert list(a) == list(b)  # the same resources, in the same order, once renamed
    left: dict[str, list] = {}
    for address, entry in b.items():
        fa, fb = _flat(a[address]), _flat(entry)
        for path in sorted(set(fa) | set(fb), key=str):
            if rename(fa.get(path)) != fb.get(path):
                left.setdefault(address, []).append((path, fa.get(path), fb.get(path)))
    slug = next(iter(a)).split(".", 1)[1].split("-prod-")[0]
    monthly = f"workflow_template.{slug}-monthly"
    workers = ("request", "body", "placement", "managedCluster", "config", "workerConfig", "numInstances")
    assert [(p, x, y) for p, x, y in left.pop(monthly)] == [(workers, 2, 6)]
    pause = {p: (x, y) for p, x, y in left.pop("scheduler.daily")}  # created paused in prod only
    assert pause == {("then", "method"): (None, "POST"), ("then", "url"): (
        None, "https://cloudscheduler.googleapis.com/v1/projects/acme-funnel-prod/locations/us-east1/jobs/daily:pause")}
    # what carries a digest of the rest: the shipped project document and content fingerprints
    artifacts = left.pop(f"artifacts.{slug}-prod-artifacts")
    assert {p[:3] for p, _, _ in artifacts} == {("request", "body", "objects_sha256")}
    assert {p[3] for p, _, _ in artifacts} == {"funnelops.zip", "project/funnel.yaml",
                                               next(p[3] for p, _, _ in artifacts if p[3].startswith("init-"))}
    for address, diffs in left.items():
        assert all(p[-1] == "funnelops-fp" for p, _, _ in diffs), (address, diffs)


def test_the_shipped_project_file_is_the_environments_resolved_document(project: Path, tmp_path: Path,
                                                                         monkeypatch) -> None:
    """Dataproc has neither --env nor the pipeline's variables: the flows read what this deployment resolved."""
    pytest.importorskip("google.cloud.storage")
    from funnelops.backends.gcp.artifacts import project_bytes
    from funnelops.spec.loader import load_project

    monkeypatch.setenv("EXTRA_LABEL", "from-the-pipeline")
    text = project.read_text(encoding="utf-8").replace("country: SE}", "country: SE, label: \"${EXTRA_LABEL}\"}")
    project.write_text(text, encoding="utf-8")
    prod = load_project(project, env="prod")
    shipped = project.parent / "shipped.yaml"
    shipped.write_bytes(project_bytes(prod))
    monkeypatch.delenv("EXTRA_LABEL")
    again = load_project(shipped)
    assert again.environments == () and again.spec == prod.spec
    assert again.spec.variables["label"] == "from-the-pipeline"


def test_env_in_funnelops_toml_gives_the_environment_and_its_home(tmp_path: Path) -> None:
    from funnelops.cli.config import resolve_settings

    (tmp_path / "funnelops.toml").write_text('project = "funnel.yaml"\nhome = "state"\nenv = "dev"\n')
    s = resolve_settings(None, None, None, {}, cwd=tmp_path)
    assert (s.env, s.home, s.sources["env"]) == ("dev", tmp_path / "state" / "env" / "dev",
                                                 str(tmp_path / "funnelops.toml"))
    s = resolve_settings(None, Path("/elsewhere"), None, {"home": "env", "env": "env"}, cwd=tmp_path, env="prod")
    assert (s.env, s.home, s.sources["env"]) == ("prod", Path("/elsewhere/env/prod"), "env")


def test_env_is_accepted_after_the_command() -> None:
    import typer

    from funnelops.cli.argv import hoist_global_flags
    from funnelops.cli.main import app

    command = typer.main.get_command(app)
    assert hoist_global_flags(["plan", "--env", "prod", "--json"], command) == ["--env", "prod", "--json", "plan"]
    assert hoist_global_flags(["validate", "--env=prod"], command) == ["--env=prod", "validate"]
    assert hoist_global_flags(["--env", "dev", "status"], command) == ["--env", "dev", "status"]
