"""Mutation check of the gcp tier: corrupt one field of a request funnelops sends, and the tier
must fail.

Why: a green gcp suite means something only if the double refuses what Google refuses. Issue #11
found 79 green tests over a backend whose every Dataproc run Google would have refused, because
the double accepted the same wrong bodies. Each case below takes a request the real gcp backend
code sends through the official clients, corrupts it on the wire the way a plausible bug would
(a misspelled key, a dropped value, an output-only field echoed back), and asserts the operation
fails *for that reason* (the failure text names the corruption). The control runs every driver
uncorrupted and must pass, so a failure is the mutation's doing and not the setup's.

How: :func:`corrupting` patches ``requests.adapters.HTTPAdapter.send`` for the test's duration.
Every official client here (Dataproc and Cloud Scheduler over REST, BigQuery and GCS over an
``AuthorizedSession``) ends in that call, so the edit happens after the client serialised the
body, exactly where a field would go wrong on its way to Google. A mutation that matches no
request fails the test (:class:`NotApplied`): a stale case must not pass silently.

To add a case, append a :class:`Mutation` to ``MUTATIONS``: which driver sends the request, which
request (HTTP verb + URL path regex), which edit, and a regex the failure text must match.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from test_backend_iac import apply, gcp_env, make_project, open_gcp  # noqa: F401 - fixture re-used

pytestmark = pytest.mark.gcp

pytest.importorskip("google.cloud.bigquery")


# -- the edits --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Edit:
    """One corruption of a request.

    ``op``: ``rename`` (the key at ``path`` becomes ``arg``), ``set`` (the value at ``path``
    becomes ``arg``; the last key may be new), ``delete`` (the key at ``path``), ``sub`` (in the
    string at ``path``, ``arg[0]`` becomes ``arg[1]``), ``query`` (in the query parameter named
    ``path``, ``arg[0]`` becomes ``arg[1]``).
    Paths are dotted keys; ``[*]`` walks every item of a list, ``[N]`` one item, and a segment
    ``@b64json`` decodes a base64 JSON string (Cloud Scheduler's ``httpTarget.body``), edits
    inside it and encodes it back.
    """

    op: str
    path: str
    arg: Any = None


@dataclass(frozen=True)
class Mutation:
    id: str
    driver: str  # a key of DRIVERS: what the test does while the corruption is active
    verb: str
    url: str  # regex searched in the request's URL path
    edit: Edit
    expect: str  # regex the failure text (error + hint + the double's records) must match
    xfail: str | None = None  # why the tier does not refuse it yet (strict: remove when it does)


# Naming of the per-run parameters follows the shared design of issue #11 (COMMON11 §1):
# FO_EXECUTION_TYPE and FO_LEASE, a value for each on every instantiation.
MUTATIONS = [
    Mutation("scheduler-update-mask-misspelled", "update_scheduler", "PATCH", r"/locations/[^/]+/jobs/[^/]+$",
             Edit("query", "updateMask", ("schedule", "schedul")), r"schedul\b"),
    Mutation("template-job-key-misspelled", "apply", "POST", r"/workflowTemplates$",
             Edit("rename", "jobs[*].pysparkJob", "pySparkJob"), r"pySparkJob"),
    Mutation("template-parameter-field-path-misspelled", "apply", "POST", r"/workflowTemplates$",
             Edit("sub", "parameters[*].fields[*]", (".args[", ".argz[")), r"argz"),
    Mutation("instantiate-parameter-value-dropped", "start", "POST", r"/workflowTemplates/[^/:]+:instantiate$",
             Edit("delete", "parameters.FO_EXECUTION_TYPE"), r"FO_EXECUTION_TYPE"),
    Mutation("scheduler-body-without-parameters", "deploy_and_force", "POST", r"/locations/[^/]+/jobs$",
             Edit("delete", "httpTarget.body.@b64json.parameters"), r"FO_EXECUTION_TYPE|FO_LEASE|parameter"),
    Mutation("scheduler-oauth-token-dropped", "deploy_and_force", "POST", r"/locations/[^/]+/jobs$",
             Edit("delete", "httpTarget.oauthToken"), r"OAuth|UNAUTHENTICATED|no Dataproc operation"),
    Mutation("bigquery-field-type-corrupted", "apply", "POST", r"/datasets/[^/]+/tables$",
             Edit("set", "schema.fields[0].type", "STRNG"), r"STRNG"),
    Mutation("bucket-lifecycle-condition-renamed", "apply", "POST", r"/storage/v1/b$",
             Edit("rename", "lifecycle.rule[*].condition.age", "agee"), r"agee"),
    Mutation("template-output-only-field-sent", "apply", "POST", r"/workflowTemplates$",
             Edit("set", "createTime", "2024-01-01T00:00:00Z"), r"createTime"),
    Mutation("template-dag-timeout-out-of-range", "apply", "POST", r"/workflowTemplates$",
             Edit("set", "dagTimeout", "172800s"), r"dagTimeout"),
    Mutation("alert-log-match-without-rate-limit", "apply_alert", "POST", r"/v3/projects/[^/]+/alertPolicies$",
             Edit("delete", "alertStrategy.notificationRateLimit"), r"notification_rate_limit"),
    Mutation("alert-log-filter-key-misspelled", "apply_alert", "POST", r"/v3/projects/[^/]+/alertPolicies$",
             Edit("rename", "conditions[*].conditionMatchedLog.filter", "filtr"), r"filtr"),
]


# -- the interceptor --------------------------------------------------------------------------
class NotApplied(AssertionError):
    """The mutation matched no request: the case is stale (or the driver sends something else)."""


class Accepted(AssertionError):
    """The corrupted request went through and the operation succeeded: the tier is too lenient."""


@dataclass
class Interceptor:
    mutation: Mutation
    hits: list[str] = field(default_factory=list)  # "VERB url" of every request edited
    errors: list[BaseException] = field(default_factory=list)  # the interceptor's own bugs
    lock: threading.Lock = field(default_factory=threading.Lock)

    def maybe_edit(self, request: Any) -> None:
        """Edit a ``requests.PreparedRequest`` in place when it is the mutation's target. An
        error here is kept apart: it must fail the test, not pass for the tier's refusal."""
        try:
            self._edit(request)
        except Exception as exc:
            with self.lock:
                self.errors.append(exc)
            raise

    def _edit(self, request: Any) -> None:
        m = self.mutation
        parts = urlsplit(request.url)
        if request.method != m.verb or not re.search(m.url, parts.path):
            return
        if m.edit.op == "query":
            query = parse_qsl(parts.query, keep_blank_values=True)
            old, new = m.edit.arg
            edited = [(k, v.replace(old, new) if k == m.edit.path else v) for k, v in query]
            if edited == query:
                return
            request.url = urlunsplit(parts._replace(query=urlencode(edited)))
        else:
            raw = request.body
            if not raw:
                return
            body = json.loads(raw)
            if not apply_edit(body, m.edit):
                return
            request.prepare_body(json.dumps(body).encode(), None)
        with self.lock:
            self.hits.append(f"{request.method} {request.url}")


@contextmanager
def corrupting(mutation: Mutation) -> Iterator[Interceptor]:
    """While active, every matching request any thread sends is edited before it leaves."""
    import requests.adapters

    interceptor = Interceptor(mutation)
    real_send = requests.adapters.HTTPAdapter.send

    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        interceptor.maybe_edit(request)
        return real_send(self, request, *args, **kwargs)

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield interceptor
    finally:
        requests.adapters.HTTPAdapter.send = real_send  # type: ignore[method-assign]


def apply_edit(doc: Any, edit: Edit) -> int:
    """Apply ``edit`` to the JSON document ``doc`` in place; returns how many places changed."""
    return _walk(doc, _segments(edit.path), edit)


def _segments(path: str) -> list[str | int]:
    out: list[str | int] = []
    for part in path.split("."):
        m = re.fullmatch(r"([^\[]*)((?:\[(?:\*|\d+)\])*)", part)
        assert m, f"bad path segment {part!r}"
        if m.group(1):
            out.append(m.group(1))
        for idx in re.findall(r"\[(\*|\d+)\]", m.group(2)):
            out.append("*" if idx == "*" else int(idx))
    return out


def _walk(node: Any, segs: list[str | int], edit: Edit) -> int:
    head, rest = segs[0], segs[1:]
    if head == "*":
        if not isinstance(node, list):
            return 0
        if not rest:
            return sum(_leaf(node, i, edit) for i in range(len(node)))
        return sum(_walk(item, rest, edit) for item in node)
    if isinstance(head, int):
        if not isinstance(node, list) or head >= len(node):
            return 0
        if rest:
            return _walk(node[head], rest, edit)
        return _leaf(node, head, edit)
    if not isinstance(node, dict):
        return 0
    if rest and rest[0] == "@b64json":
        if not isinstance(node.get(head), str):
            return 0
        inner = json.loads(base64.b64decode(node[head]) or b"{}")
        n = _walk(inner, rest[1:], edit)
        if n:
            node[head] = base64.b64encode(json.dumps(inner).encode()).decode()
        return n
    if rest:
        return _walk(node[head], rest, edit) if head in node else 0
    return _leaf(node, head, edit)


def _leaf(node: Any, key: Any, edit: Edit) -> int:
    present = key in node if isinstance(node, dict) else key < len(node)
    if edit.op == "set":
        node[key] = edit.arg
        return 1
    if not present:
        return 0
    if edit.op == "rename":
        node[edit.arg] = node.pop(key)
    elif edit.op == "delete":
        del node[key]
    elif edit.op == "sub":
        old, new = edit.arg
        if not isinstance(node[key], str) or old not in node[key]:
            return 0
        node[key] = node[key].replace(old, new)
    else:
        raise ValueError(f"unknown edit {edit.op!r}")
    return 1


# -- the drivers: real backend code against the double ----------------------------------------
@dataclass
class World:
    tmp_path: Path
    double: Any

    def fresh(self) -> tuple[Any, Any]:
        return open_gcp(make_project(self.tmp_path), self.tmp_path)

    def deployed(self) -> tuple[Any, Any]:
        loaded, backend = self.fresh()
        apply(loaded, backend, "iac")
        return loaded, backend


def _finish(world: World, backend: Any, run: Any) -> None:
    from funnelops.runs import coordinator

    world.double.dataproc.finish()
    done = coordinator.wait(backend.runtime, [run.id], poll_s=0.05, timeout=30)
    assert done[0].state == "DONE", done[0]


def drive_apply(world: World, corrupt: Callable[[], Any]) -> None:
    """`job create-infra --stage IaC` from empty: buckets, datasets, tables, templates, jobs."""
    loaded, backend = world.fresh()
    with corrupt():
        apply(loaded, backend, "iac")


def drive_update_scheduler(world: World, corrupt: Callable[[], Any]) -> None:
    """A cron change on a deployed project: a Cloud Scheduler PATCH with an updateMask."""
    loaded, backend = world.deployed()
    text = loaded.path.read_text(encoding="utf-8")
    assert 'cron: "0 6 * * *"' in text
    loaded.path.write_text(text.replace('cron: "0 6 * * *"', 'cron: "30 6 * * *"'), encoding="utf-8")
    loaded, backend = open_gcp(loaded.path, world.tmp_path)
    with corrupt():
        apply(loaded, backend, "iac")
    job = next(j for j in world.double.scheduler.jobs() if j["name"].endswith("/jobs/dia"))
    assert job["schedule"] == "30 6 * * *", job  # the change landed, not just "no error"


def drive_start(world: World, corrupt: Callable[[], Any]) -> None:
    """`funnelops start` of a deployed workflow: a Dataproc instantiate."""
    from funnelops.runs import coordinator

    loaded, backend = world.deployed()
    world.double.dataproc.set_run_outcome(duration_s=None)
    with corrupt():
        run = coordinator.start(backend, "funnel-dia", trigger="manual", actor="mutations")
    _finish(world, backend, run)


def drive_deploy_and_force(world: World, corrupt: Callable[[], Any]) -> None:
    """Deploy, then `job force-scheduler`: Cloud Scheduler's own HTTP call to instantiate."""
    from funnelops.runs import coordinator

    loaded, backend = world.fresh()
    world.double.dataproc.set_run_outcome(duration_s=None)
    backend.runtime.confirm_timeout_s = 1.0  # a refused dispatch starts nothing: don't wait long
    with corrupt():
        apply(loaded, backend, "iac")
        run = coordinator.force_scheduler(backend, "dia", "funnel-dia", actor="mutations")
    _finish(world, backend, run)


def drive_apply_alert(world: World, corrupt: Callable[[], Any]) -> None:
    """IaC of a project that asks for the gcp log-based alert (Cloud Monitoring alertPolicies.create)."""
    block = ('\nnotifications:\n  gcp_alert:\n'
             '    notification_channels: ["projects/acme-crm-prod/notificationChannels/123"]\n')
    loaded, backend = open_gcp(make_project(world.tmp_path, edit=lambda text: text + block), world.tmp_path)
    with corrupt():
        apply(loaded, backend, "iac")
    [policy] = world.double.monitoring.policies()
    assert policy["alertStrategy"]["notificationRateLimit"]["period"], policy


DRIVERS: dict[str, Callable[[World, Callable[[], Any]], None]] = {
    "apply": drive_apply, "update_scheduler": drive_update_scheduler, "start": drive_start,
    "deploy_and_force": drive_deploy_and_force, "apply_alert": drive_apply_alert,
}


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _refusal_text(exc: BaseException, double: Any) -> str:
    """Everything that says why the operation failed: the error, its hint, and what the double
    recorded (contract violations, and Cloud Scheduler dispatches its target refused)."""
    parts = [str(exc), str(getattr(exc, "message", "")), str(getattr(exc, "hint", "") or "")]
    parts += [str(v) for v in double.violations]
    parts += [json.dumps(d.get("status") or {}) for d in double.scheduler.dispatches]
    return "\n".join(parts)


# -- the tests --------------------------------------------------------------------------------
def _params() -> list[Any]:
    out = []
    for m in MUTATIONS:
        marks = [pytest.mark.xfail(strict=True, raises=(Accepted, NotApplied), reason=m.xfail)] if m.xfail else []
        out.append(pytest.param(m, id=m.id, marks=marks))
    return out


def test_mutation_catalogue_is_well_formed():
    ids = [m.id for m in MUTATIONS]
    assert len(ids) == len(set(ids))
    for m in MUTATIONS:
        assert m.driver in DRIVERS, m.id
        assert m.edit.op in ("rename", "set", "delete", "sub", "query"), m.id
        re.compile(m.url)
        re.compile(m.expect)


@pytest.mark.parametrize("driver", sorted(DRIVERS))
def test_control_uncorrupted_run_passes(driver, gcp_env, gcp_double, fake_gcs, tmp_path):  # noqa: F811
    """Every driver, with nothing corrupted, succeeds and breaks no contract."""
    DRIVERS[driver](World(tmp_path, gcp_double), _nothing)
    gcp_double.assert_clean()
    fake_gcs.proxy.assert_clean()


@pytest.mark.parametrize("mutation", _params())
def test_a_corrupted_request_makes_the_gcp_tier_fail(mutation, gcp_env, gcp_double, fake_gcs, tmp_path):  # noqa: F811
    gcp_double.expect_violations()
    fake_gcs.proxy.expect_violations()  # GCS requests are held to storage.v1.json by the proxy
    holder: list[Interceptor] = []

    @contextmanager
    def corrupt() -> Iterator[None]:
        with corrupting(mutation) as interceptor:
            holder.append(interceptor)
            yield

    error: BaseException | None = None
    try:
        DRIVERS[mutation.driver](World(tmp_path, gcp_double), corrupt)
    except (NotApplied, Accepted):
        raise
    except AssertionError as exc:  # a driver's own check of the result: accepted, and wrong
        raise Accepted(f"{mutation.id}: the corrupted request was accepted and silently did the "
                       f"wrong thing: {exc}") from None
    except Exception as exc:  # the refusal we want: any error of the operation
        error = exc
    broken = [e for i in holder for e in i.errors]
    assert not broken, f"the interceptor itself failed: {broken[0]!r}"
    hits = [h for i in holder for h in i.hits]
    if not hits:
        raise NotApplied(f"{mutation.id}: no {mutation.verb} request matched {mutation.url!r} with "
                         f"{mutation.edit}; the case is stale")
    if error is None:
        raise Accepted(f"{mutation.id}: the gcp tier accepted {len(hits)} corrupted request(s), "
                       f"e.g. {hits[0]}; the double must refuse what Google refuses")
    text = _refusal_text(error, gcp_double)
    assert re.search(mutation.expect, text), (
        f"{mutation.id}: it failed, but not for the corruption (expected /{mutation.expect}/):\n{text}")


def test_the_edits_do_what_they_say():
    """The little path language, on the shapes the cases use."""
    tpl = {"jobs": [{"stepId": "a", "pysparkJob": {"args": ["x"]}}, {"stepId": "b", "pysparkJob": {}}],
           "parameters": [{"name": "P", "fields": ["jobs['a'].pysparkJob.args[0]"]}]}
    assert apply_edit(tpl, Edit("rename", "jobs[*].pysparkJob", "pySparkJob")) == 2
    assert "pySparkJob" in tpl["jobs"][1] and "pysparkJob" not in tpl["jobs"][0]
    assert apply_edit(tpl, Edit("sub", "parameters[*].fields[*]", (".args[", ".argz["))) == 1
    assert tpl["parameters"][0]["fields"] == ["jobs['a'].pysparkJob.argz[0]"]
    assert apply_edit(tpl, Edit("delete", "nothing.here")) == 0
    job = {"httpTarget": {"body": base64.b64encode(b'{"parameters": {"A": "1"}}').decode()}}
    assert apply_edit(job, Edit("delete", "httpTarget.body.@b64json.parameters")) == 1
    assert json.loads(base64.b64decode(job["httpTarget"]["body"])) == {}
    assert apply_edit({"schema": {"fields": [{"type": "DATE"}]}}, Edit("set", "schema.fields[0].type", "X")) == 1
