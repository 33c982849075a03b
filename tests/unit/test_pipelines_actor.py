"""Every pipeline job that runs funnelops says who started it: FUNNELOPS_ACTOR (issue 13).

Without it, "started by" in the ledger and a run's actor name the CI agent's user@host. Azure sets
it from `$(Build.RequestedFor)` on the step that runs funnelops (the shared step template);
GitHub from `${{ github.actor }}` in the workflow's (or the job's, or the step's) env. Checked on
the expanded Azure pipelines (every runtime value) and on every GitHub job, through the helpers
of test_pipelines.py that find the funnelops calls.
"""

from __future__ import annotations

import pytest

from tests.unit.test_pipelines import (AZURE_CASES, GITHUB_PIPELINES, _case_id, azure_active, azure_macros,
                                       expanded, funnelops_calls, job_steps, load_github)

AZURE_ACTOR = "$(Build.RequestedFor)"
GITHUB_ACTOR = "${{ github.actor }}"


@pytest.mark.parametrize("case", AZURE_CASES, ids=_case_id)
def test_every_azure_step_that_runs_funnelops_sets_the_actor(case) -> None:
    name, values = case
    seen = 0
    for _stage, jobs in azure_active(expanded(name, values)):
        for job in jobs:
            for step in job_steps(job):  # a deployment job's too
                script = step.get("bash") or step.get("script")
                if not script or not funnelops_calls(azure_macros(script), where=f"{name} {job.get('job')}"):
                    continue
                seen += 1
                assert (step.get("env") or {}).get("FUNNELOPS_ACTOR") == AZURE_ACTOR, \
                    f"{name} {values}: job {job.get('job')} runs funnelops without FUNNELOPS_ACTOR"
    assert seen, f"{name} {values}: no funnelops step found"


@pytest.mark.parametrize("name", sorted(GITHUB_PIPELINES))
def test_every_github_job_that_runs_funnelops_sets_the_actor(name: str) -> None:
    doc = load_github(GITHUB_PIPELINES[name])
    seen = 0
    for jid, job in doc["jobs"].items():
        for step in job["steps"]:
            if "run" not in step or "funnelops" not in step["run"] or "pip install" in step["run"]:
                continue
            seen += 1
            env = {**doc.get("env", {}), **job.get("env", {}), **step.get("env", {})}
            assert env.get("FUNNELOPS_ACTOR") == GITHUB_ACTOR, f"{name}: job {jid} runs funnelops without it"
    assert seen, f"{name}: no funnelops step found"
