"""A run started under `--env prod` is carried out under prod, in prod's own home (issue 15).

The project is `funnelops init`'s with bucket names written `${FUNNELOPS_ENV}` (no default: a
process that loaded the project without the environment would fail) and a prod overlay. The run's
supervisor and its flows process are separate processes that load the project again: they must
merge the same overlay, and write into `<home>/env/prod`, never into dev's or the base's home.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

OVERLAYS = """
environments:
  dev: {}
  prod:
    project: {id: acme-funnel-prod}
    variables: {env: prod}
"""


def _cli(cwd: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env.update(NO_COLOR="1", COLUMNS="200")
    proc = subprocess.run([sys.executable, "-m", "funnelops", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == code, (f"funnelops {' '.join(args)}: exit {proc.returncode}, expected {code}\n"
                                     f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


def test_a_prod_run_loads_prod_and_writes_prods_home(tmp_path: Path) -> None:
    _cli(tmp_path, "init", "envs")
    folder = tmp_path / "envs"
    path = folder / "funnel.yaml"
    text = path.read_text(encoding="utf-8")
    slug = re.search(r"artifacts_bucket: (\S+)-artifacts", text).group(1)  # type: ignore[union-attr]
    text = re.sub(rf"(?<![\w\"]){slug}-(raw|trusted|refined|artifacts)\b",
                  lambda m: f'"{slug}-${{FUNNELOPS_ENV}}-{m.group(1)}"', text)
    path.write_text(text + OVERLAYS, encoding="utf-8")
    leads = tmp_path / "leads.csv"
    leads.write_text("lead_id,created_date,source\n" + "".join(
        f"L{i},2024-03-{1 + i % 28:02d},{'web' if i % 2 else 'ads'}\n" for i in range(60)), encoding="utf-8")

    # without an environment the project cannot load: ${FUNNELOPS_ENV} has no default
    failed = _cli(folder, "--json", "validate", code=2)
    assert "FUNNELOPS_ENV is not set" in json.loads(failed.stdout)["problems"][0]["message"]

    _cli(folder, "--env", "prod", "pipeline", "funnel", "--data-stage", "IaC")
    _cli(folder, "--env", "prod", "data", "load", str(leads), "--flow", "leads")
    _cli(folder, "--env", "prod", "pipeline", "funnel", "--data-stage", "Initial data")
    _cli(folder, "--env", "prod", "pipeline", "workflow", "--scheduler", "monthly", "--period", "2024-03", "--wait")
    runs = json.loads(_cli(folder, "--env", "prod", "--json", "runs").stdout)
    assert runs and all(r["state"] == "DONE" for r in runs), runs

    home = folder / ".funnelops"
    prod = home / "env" / "prod"
    assert sorted(p.name for p in (prod / "buckets").iterdir() if not p.name.startswith(".")) == sorted(
        f"{slug}-prod-{layer}" for layer in ("raw", "trusted", "refined", "artifacts"))
    assert list((prod / "buckets" / f"{slug}-prod-trusted" / "leads").rglob("*.parquet"))
    assert not (home / "env" / "dev").exists() and not (home / "ledger.sqlite").exists()
    status = json.loads(_cli(folder, "--env", "prod", "--json", "status").stdout)
    assert (status["env"], status["project"]) == ("prod", "acme-funnel-prod")
