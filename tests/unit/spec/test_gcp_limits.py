"""Values Dataproc and Cloud Scheduler refuse are `validate` errors on the line they are on.

Each case is a small funnel.yaml whose problem line ends with `#<`; before these checks each of
them loaded fine and failed only at `apply` (or at the first run) with Google's message.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project

P = "project:\n  id: demo-project\n"


def wf(extra: str = "", placement: str = "", job: str = "") -> str:
    text = P + "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n      - step_id: step-one\n" + job
    if placement:
        text += "    placement:\n" + placement
    return text + extra


SCHED = 'schedulers:\n  - name: Día\n    id: dia\n    cron: "0 6 * * *"\n    workflow: wf-day\n'


@dataclass
class Case:
    id: str
    text: str
    field: str
    says: str


CASES = [
    Case("cluster-name-36", wf(placement="      cluster_name: " + "c" * 36 + "  #<\n"),
         "workflows[wf-day].placement.cluster_name", "2-35"),
    Case("one-worker", wf(placement="      workers: 1  #<\n"), "placement.workers", "1 primary worker"),
    Case("zero-workers-without-property", wf(placement="      workers: 0  #<\n"), "placement.workers",
         "dataproc:dataproc.allow.zero.workers"),
    Case("zone-outside-region", wf(placement="      zone: europe-west1-b  #<\n"), "placement.zone", "us-east1"),
    Case("dag-timeout-short", wf("    dag_timeout: 300s  #<\n"), "workflows[wf-day].dag_timeout", "10 minutes"),
    Case("dag-timeout-long", wf("    dag_timeout: 90000s  #<\n"), "workflows[wf-day].dag_timeout", "24 hours"),
    Case("attempt-deadline-short", wf(SCHED + "    attempt_deadline: 10s  #<\n"),
         "schedulers[Día].attempt_deadline", "15s to 1800s"),
    Case("attempt-deadline-long", wf(SCHED + "    attempt_deadline: 3600s  #<\n"),
         "schedulers[Día].attempt_deadline", "15s to 1800s"),
    Case("gcp-scheduler-without-service-account",
         "project:  #<\n  id: demo-project\n  backend: gcp\n" + wf(SCHED, placement="      service_account: c@p.iam.x.com\n")[len(P):],
         "project.service_account", "oauth token"),
    Case("gcp-cluster-without-service-account",
         ("project:\n  id: demo-project\n  backend: gcp\n" + wf(placement="      workers: 2\n")[len(P):])
         .replace("placement:", "placement:  #<"),
         "workflows[wf-day].placement.service_account", "compute engine default"),
    Case("parameter-path-misspelled",
         wf("    parameters:\n      - name: ZONE\n        fields: [\"jobs['step-one'].pySparkJob.args[0]\"]  #<\n",
            job="        args: ['--zone=a']\n"),
         "parameters[ZONE].fields", "does not resolve"),
    Case("parameter-path-unknown-step",
         wf("    parameters:\n      - name: ZONE\n        fields: [\"jobs['step-two'].pysparkJob.args[0]\"]  #<\n"),
         "parameters[ZONE].fields", "does not resolve"),
    Case("parameter-path-whole-list",
         wf("    parameters:\n      - name: ZONE\n        fields: [\"jobs['step-one'].pysparkJob.args\"]  #<\n"),
         "parameters[ZONE].fields", "whole map or list"),
    Case("parameter-takes-the-run-tail",
         # the flows step's args: --refined_flows=false (IaC) then the tail at 1 and 2
         wf("    parameters:\n      - name: ZONE\n        fields: [\"jobs['step-one'].pysparkJob.args[2]\"]  #<\n"),
         "parameters[ZONE].fields", "already a field of parameter FO_"),
    Case("parameter-value-against-regex",
         wf("    parameters:\n      - name: ZONE\n        fields: [\"labels['zone']\"]\n        regexes: ['^[a-z]+$']\n"
            "        value: 'B1'  #<\n", placement="") .replace("    jobs:", "    labels: {zone: a}\n    jobs:"),
         "parameters[ZONE].value", "does not match"),
]


def marked_line(text: str) -> int:
    (hit,) = [i + 1 for i, line in enumerate(text.splitlines()) if line.rstrip().endswith("#<")]
    return hit


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_google_limits_are_located_validate_errors(case: Case, write_project) -> None:
    path = write_project(case.text)
    with pytest.raises(ProjectError) as info:
        load_project(path)
    problems = info.value.problems
    assert len(problems) == 1, [p.render() for p in problems]
    (p,) = problems
    assert p.line == marked_line(case.text), p.render()
    assert case.field in p.field, p.render()
    assert case.says.lower() in f"{p.message} {p.hint or ''}".lower(), p.render()


def test_values_google_takes_pass(write_project) -> None:
    """The edges of each range, a single-node cluster with its property, a resolvable parameter."""
    text = ("project:\n  id: demo-project\n  backend: gcp\n  service_account: wf@demo-project.iam.gserviceaccount.com\n"
            + wf(SCHED + "    attempt_deadline: 15s\n",
                 placement="      cluster_name: " + "c" * 35 + "\n      workers: 0\n"
                           "      properties: {'dataproc:dataproc.allow.zero.workers': 'true'}\n",
                 job="        args: ['--zone=a']\n")[len(P):]
            .replace("    jobs:", "    dag_timeout: 86400s\n    parameters:\n      - name: ZONE\n"
                     "        fields: [\"jobs['step-one'].pysparkJob.args[0]\"]\n        regexes: ['^--zone=[a-z]$']\n"
                     "    jobs:"))
    loaded = load_project(write_project(text))
    assert loaded.spec.workflows[0].placement.workers == 0


def test_the_command_lines_backend_decides_the_gcp_checks(write_project) -> None:
    """`--backend gcp` over a file that says `backend: local` (the shipped example does) still gets
    the gcp identity checks: what runs decides, not the file's default."""
    path = write_project(wf(SCHED, placement="      service_account: c@p.iam.x.com\n"))
    load_project(path)  # local: no scheduler identity needed
    with pytest.raises(ProjectError) as info:
        load_project(path, backend="gcp")
    assert [p.field for p in info.value.problems] == ["project.service_account"]
