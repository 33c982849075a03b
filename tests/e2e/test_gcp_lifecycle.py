"""The whole seed lifecycle on `--backend gcp`, through the CLI, against the contract double and
fake-gcs-server: IaC, Initial data (runs simulated by the double), forcing every scheduler, and
the overlap refusal (exit 3). Each command is a separate process, as each Azure job runs on a
separate agent: the lifecycle stages and leases must live in GCS, not on the machine."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

pytestmark = [pytest.mark.gcp]

pytest.importorskip("google.cloud.bigquery")

REPO = Path(__file__).resolve().parents[2]


def test_the_seed_lifecycle_on_gcp(gcp_double, fake_gcs, tmp_path):
    # gcp_double and fake_gcs: the shared fixtures of tests/gcp_double/plugin.py
    fake_gcs_url = fake_gcs.url
    project = tmp_path / "funnel"
    shutil.copytree(REPO / "projects" / "funnel", project, ignore=shutil.ignore_patterns("__pycache__", "data"))
    uid = uuid.uuid4().hex[:8]
    yaml_file = project / "funnel.yaml"
    yaml_file.write_text(yaml_file.read_text(encoding="utf-8").replace("analitica-funnel-", f"e{uid}-"),
                         encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}
    env.update(FUNNELOPS_STORAGE_ENDPOINT=fake_gcs_url, FUNNELOPS_BIGQUERY_ENDPOINT=gcp_double.url,
               FUNNELOPS_DATAPROC_ENDPOINT=gcp_double.url, FUNNELOPS_SCHEDULER_ENDPOINT=gcp_double.url,
               FUNNELOPS_ACTOR="azure-agent", NO_COLOR="1", FUNNELOPS_GCP_RETRY_INITIAL_S="0.01")

    def cli(*args: str, home: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "funnelops", "--backend", "gcp", "--project", str(yaml_file),
               "--home", str(tmp_path / home), *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)

    # Out of order first: the workflow pipeline refuses before Initial data (exit 4).
    early = cli("pipeline", "workflow", "--scheduler", "Día", home="agent0")
    assert early.returncode == 4, early.stderr

    iac = cli("pipeline", "funnel", "--data-stage", "IaC", home="agent1")
    assert iac.returncode == 0, iac.stderr + iac.stdout
    assert len(gcp_double.dataproc.templates()) == 4 and len(gcp_double.scheduler.jobs()) == 4

    # Some trusted data exists (a real run would write it), so Initial data creates that table.
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    gcs = storage.Client(project="x", credentials=AnonymousCredentials(), client_options={"api_endpoint": fake_gcs_url})
    gcs.bucket(f"e{uid}-trusted").blob("leads/period=2024-01-01/part-0.parquet").upload_from_string(b"PAR1")

    initial = cli("pipeline", "funnel", "--data-stage", "Initial data", home="agent2")
    assert initial.returncode == 0, initial.stderr + initial.stdout
    ops = gcp_double.dataproc.operations()
    assert len(ops) == 6 and all(op["done"] for op in ops)  # three initial-load workflows, twice
    assert {op["metadata"]["template"].rsplit("/", 1)[-1] for op in ops} == {"funnel-dia", "funnel-mes", "funnel-anio"}
    # Every instantiation sends a value for every declared parameter (the lease is the CLI's token).
    assert all(set(op["metadata"]["parameters"]) == {"FO_EXECUTION_TYPE", "FO_LEASE", "FO_PERIOD"} for op in ops)
    assert all(op["metadata"]["parameters"]["FO_EXECUTION_TYPE"] == "--execution_type=full" for op in ops)
    assert any(t["tableReference"]["tableId"] == "leads" for t in gcp_double.bigquery.tables("funnel_trusted"))
    args = {t["id"]: t["jobs"][0]["pysparkJob"]["args"] for t in gcp_double.dataproc.templates()}
    assert all("--trusted_flows=false" in a for a in args.values())

    # Force every scheduler (each a separate agent); the runs go through Cloud Scheduler jobs.run.
    gcp_double.dataproc.set_run_outcome(duration_s=None)  # runs last until the test ends them
    for word in ("Día", "Mes", "Año", "Duplicado mes"):
        forced = cli("pipeline", "workflow", "--scheduler", word, home=f"agent-{word}")
        assert forced.returncode == 0, forced.stderr + forced.stdout
    assert len(gcp_double.scheduler.dispatches) == 4
    assert all(d["operation"] for d in gcp_double.scheduler.dispatches)
    # The scheduler's body gave every parameter a value: the fired runs work under their own lease.
    assert all(gcp_double.dataproc.run_args(d["operation"])["funnel-flows"][-3] == "--lease=scheduled"
               for d in gcp_double.scheduler.dispatches)
    args = {t["id"]: t["jobs"][0]["pysparkJob"]["args"] for t in gcp_double.dataproc.templates()}
    assert not any("--trusted_flows=false" in a or "--refined_flows=false" in a for a in args.values())

    # The overlap refusal: Día is still running, so forcing it again is refused, exit 3.
    again = cli("pipeline", "workflow", "--scheduler", "Día", home="agent-late")
    assert again.returncode == 3, again.stderr + again.stdout
    assert "workflow 'funnel-dia' is already running: run" in again.stderr
    assert "by a forced run (azure-agent)" in again.stderr
    assert len(gcp_double.scheduler.dispatches) == 4  # never a second run

    gcp_double.dataproc.finish()
    status = cli("status", "--json", home="agent-status")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert [s["done"] for s in data["stages"]] == [True, True, True]
    assert data["running"] == []
    runs = cli("runs", "--json", home="agent-status")
    assert runs.returncode == 0, runs.stderr
    assert len(json.loads(runs.stdout)) >= 10
