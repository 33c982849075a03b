"""Values Google refuses, caught by `validate` with the line they are on.

A template or scheduler job that Dataproc or Cloud Scheduler refuses fails `apply` halfway, with
Google's message and no line number; these checks say it before anything is sent, on every
backend (a project validated locally is the one deployed to gcp):

* Dataproc managed cluster: name 2-35 characters (lowercase letters, digits, hyphens, starting
  with a letter); primary workers 0 (single node, only with
  ``dataproc:dataproc.allow.zero.workers=true`` in ``placement.properties``) or at least 2;
  ``dag_timeout`` between 10 minutes and 24 hours; the zone, if given, in the project's region.
* Template parameters: each field path resolves in the template at every stage, a field belongs
  to one parameter (funnelops' own FO_EXECUTION_TYPE/FO_LEASE included), regexes compile, and the
  value every run sends (``value``, or the template's own) matches them.
* Cloud Scheduler: ``attempt_deadline`` between 15 s and 30 min (HTTP targets).
* On the gcp backend, a service account: ``project.service_account`` is the identity whose OAuth
  token the scheduler jobs send to Dataproc, and the clusters' identity unless a workflow's
  ``placement.service_account`` names another.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from funnelops.errors import ProblemCollector

if TYPE_CHECKING:
    from funnelops.spec.models import Workflow
    from funnelops.spec.validate import Checked

CLUSTER_NAME_MAX = 35
ZERO_WORKERS = "dataproc:dataproc.allow.zero.workers"
DAG_TIMEOUT_S = (600, 86400)
ATTEMPT_DEADLINE_S = (15, 1800)
STAGES = ("iac", "initial_data", "workflow")


def _secs(text: str) -> int:
    return int(text.rstrip("s"))


def check_clusters(p: Checked, c: ProblemCollector) -> None:
    """Each workflow's managed cluster and DAG timeout are within Dataproc's limits."""
    for i, w in enumerate(p.spec.workflows):
        pl, where = w.placement, f"workflows[{w.name}]"
        at = ("workflows", i, "placement")
        if not 2 <= len(pl.cluster_name) <= CLUSTER_NAME_MAX:
            c.add(p.file, p.line((*at, "cluster_name")), f"{where}.placement.cluster_name",
                  f"cluster name '{pl.cluster_name}' has {len(pl.cluster_name)} characters; Dataproc allows 2-35",
                  "shorten it (Dataproc appends its own suffix to the name)")
        if pl.workers == 1:
            c.add(p.file, p.line((*at, "workers")), f"{where}.placement.workers",
                  "Dataproc refuses a cluster with 1 primary worker",
                  f"use 2 or more, or 0 for a single-node cluster (with {ZERO_WORKERS}: 'true' in placement.properties)")
        elif pl.workers == 0 and pl.properties.get(ZERO_WORKERS, "").lower() != "true":
            c.add(p.file, p.line((*at, "workers")), f"{where}.placement.workers",
                  "0 workers is a single-node cluster, which Dataproc creates only with the single-node property",
                  f"add properties: {{'{ZERO_WORKERS}': 'true'}} to the placement, or use 2 or more workers")
        region = p.spec.project.region
        if pl.zone and not pl.zone.startswith(region + "-"):
            c.add(p.file, p.line((*at, "zone")), f"{where}.placement.zone",
                  f"zone {pl.zone} is not in the project's region {region}", f"use a zone such as {region}-b")
        low, high = DAG_TIMEOUT_S
        if not low <= _secs(w.dag_timeout) <= high:
            c.add(p.file, p.line(("workflows", i, "dag_timeout")), f"{where}.dag_timeout",
                  f"dag_timeout {w.dag_timeout} is outside Dataproc's range of 10 minutes to 24 hours",
                  f"use {low}s to {high}s")


def check_scheduler_deadlines(p: Checked, c: ProblemCollector) -> None:
    """Each scheduler's attempt deadline is within Cloud Scheduler's range for HTTP targets."""
    low, high = ATTEMPT_DEADLINE_S
    for i, s in enumerate(p.spec.schedulers):
        if not low <= _secs(s.attempt_deadline) <= high:
            c.add(p.file, p.line(("schedulers", i, "attempt_deadline")), f"schedulers[{s.name}].attempt_deadline",
                  f"attempt_deadline {s.attempt_deadline} is outside Cloud Scheduler's range for HTTP targets",
                  f"use {low}s to {high}s")


def check_service_accounts(p: Checked, c: ProblemCollector) -> None:
    """On gcp, scheduler jobs and clusters have an identity (see the module docstring)."""
    spec = p.spec
    if p.loaded.backend != "gcp" or spec.project.service_account:
        return
    if spec.schedulers:
        c.add(p.file, p.line(("project", "service_account")), "project.service_account",
              "no service account for the scheduler jobs: Cloud Scheduler needs one to get the OAuth token "
              "it sends to Dataproc", "set project.service_account (e.g. funnel-workflows@PROJECT.iam.gserviceaccount.com)")
    for i, w in enumerate(spec.workflows):
        if not w.placement.service_account:
            c.add(p.file, p.line(("workflows", i, "placement")), f"workflows[{w.name}].placement.service_account",
                  "no service account for the cluster: it would run as the Compute Engine default account",
                  "set project.service_account or placement.service_account")


def check_parameters(p: Checked, c: ProblemCollector) -> None:
    """User parameters resolve and validate against the template funnelops builds, at every stage."""
    for i, w in enumerate(p.spec.workflows):
        for k, prm in enumerate(w.parameters):
            at, where = ("workflows", i, "parameters", k), f"workflows[{w.name}].parameters[{prm.name}]"
            bad = _bad_regex(prm.regexes)
            if bad:
                c.add(p.file, p.line((*at, "regexes")), f"{where}.regexes", bad)
                continue
            problem = _template_problem(p, w, prm.name)
            if problem is None:
                continue
            key, message = problem
            hint = ("write paths like jobs['STEP_ID'].pysparkJob.args[N] or labels['KEY'] (REST field names)"
                    if key == "fields" else "give a `value` that matches the regexes")
            c.add(p.file, p.line((*at, key)), f"{where}.{key}", message, hint)


def _bad_regex(regexes: list[str]) -> str | None:
    for rx in regexes:
        try:
            re.compile(rx)
        except re.error as exc:
            return f"invalid regular expression {rx!r}: {exc}"
    return None


def _template_problem(p: Checked, w: Workflow, name: str) -> tuple[str, str] | None:
    """(spec key, message) of what Dataproc would refuse about parameter `name` of `w` at any stage."""
    from funnelops.backends.run_params import field_value, instantiate_values
    from funnelops.backends.shapes import template_to_dataproc
    from funnelops.spec.project import workflow_config

    prm = next(x for x in w.parameters if x.name == name)
    for stage in STAGES:
        body = template_to_dataproc(w.name, workflow_config(p.loaded, w.name, stage), lambda m: m)
        for other in body.get("parameters") or []:
            for path in other.get("fields") or []:
                if other["name"] != name and path in prm.fields:
                    return "fields", f"field {path} is already a field of parameter {other['name']}"
        for path in prm.fields:
            try:
                node = field_value(body, path)
            except (KeyError, ValueError) as exc:
                return "fields", f"{exc.args[0]} (stage {stage})"
            if isinstance(node, (dict, list)):
                return "fields", f"field path {path!r} names a whole map or list; name one value or one item"
        value = instantiate_values(body, values={name: prm.value} if prm.value is not None else {},
                                   workflow=w.name)[name]
        for rx in prm.regexes:
            if not re.fullmatch(rx, value):
                return ("value" if prm.value is not None else "regexes"), \
                    f"the value runs send, {value!r}, does not match {rx!r} (stage {stage})"
    return None
