"""`funnelops demo`, the README's main command, from an empty directory to a funnel summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))


def test_demo_runs_the_whole_lifecycle_from_an_empty_directory(tmp_path):
    target = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    env["NO_COLOR"] = "1"
    proc = subprocess.run([FUNNELOPS, "--json", "demo", "--dir", str(target), "--rows", "5000"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert [p["pipeline"] for p in out["pipelines"]] == ["Datos_GCP_Funnel", "Datos_GCP_Funnel",
                                                          "Datos_GCP_Funnel_Workflow"]
    assert [p["parameters"] for p in out["pipelines"]] == [{"dataStage": "IaC"}, {"dataStage": "Initial data"},
                                                            {"Select a Scheduler": "Día"}]
    assert all(p["ok"] for p in out["pipelines"])
    stages = out["funnel"]["stages"]
    assert [s["stage"] for s in stages] == ["lead", "qualified", "opportunity", "won"]
    volumes = [s["volume"] for s in stages]
    assert volumes[0] > 0 and volumes == sorted(volumes, reverse=True)  # a funnel narrows
    for prev, s in zip(stages, stages[1:]):
        assert abs(s["conversion_from_previous"] - s["volume"] / prev["volume"]) < 1e-9
    # people see the summary with its bar chart; the project and state stayed in the directory
    assert "The refined funnel" in proc.stderr and "█" in proc.stderr
    assert (target / "project" / "funnel.yaml").is_file()
    assert (target / ".funnelops" / "warehouse.duckdb").is_file()
    assert not (tmp_path / ".funnelops").exists()
