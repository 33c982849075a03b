"""Both backends implement the whole contract of backends/base.py, member by member.

`isinstance` against a runtime-checkable Protocol only checks that names exist; these tests also
compare every method's signature (parameter names, kinds, defaults) with the Protocol's, and look
at the objects a backend hands out (runtime, ledger, schedulers, storage, handlers), so a backend
that drifts from the contract fails here rather than in a `status` on one backend only.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from funnelops.backends import base
from funnelops.backends.base import KINDS, Backend, Ledger, ResourceHandler, Runtime, Schedulers, Storage

SKIP = {"__init__", "__subclasshook__", "__class_getitem__", "__init_subclass__"}


def _members(proto: type) -> tuple[dict[str, Any], set[str]]:
    """The Protocol's methods (name -> function) and its data members (annotated attributes and
    read-only properties)."""
    methods = {n: f for n, f in vars(proto).items() if inspect.isfunction(f) and n not in SKIP}
    props = {n for n, f in vars(proto).items() if isinstance(f, property)}
    return methods, set(getattr(proto, "__annotations__", {})) | props


def _params(sig: inspect.Signature) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


def check(obj: object, proto: type) -> None:
    methods, data = _members(proto)
    assert methods or data, proto
    missing = [n for n in [*methods, *data] if not hasattr(obj, n)]
    assert not missing, f"{type(obj).__name__} lacks {missing} of {proto.__name__}"
    for name, fn in methods.items():
        impl = getattr(obj, name)
        assert callable(impl), (type(obj).__name__, name)
        want = _params(inspect.signature(fn))[1:]  # without self
        got = _params(inspect.signature(impl))  # bound: no self
        # The same parameters first; anything more must be optional (a backend's own extra).
        extra_optional = all(d is not inspect.Parameter.empty or k in (inspect.Parameter.VAR_POSITIONAL,
                                                                       inspect.Parameter.VAR_KEYWORD)
                             for _, k, d in got[len(want):])
        assert got[:len(want)] == want and extra_optional, \
            f"{type(obj).__name__}.{name}{inspect.signature(impl)} != {proto.__name__}.{name}{inspect.signature(fn)}"
    assert isinstance(obj, proto)


@pytest.fixture
def local(tmp_path: Path):
    from funnelops.backends.local import LocalBackend

    b = LocalBackend(tmp_path / "home", "p", "us-central1", "America/Bogota")
    yield b
    b.close()


@pytest.fixture
def gcp(tmp_path: Path):
    pytest.importorskip("google.cloud.dataproc_v1")
    from funnelops.backends.gcp import GcpBackend

    b = GcpBackend("p", "us-central1", artifacts_bucket="p-funnelops", home=tmp_path)  # clients are lazy
    yield b
    b.close()


@pytest.mark.parametrize("which", ["local", "gcp"])
def test_backend_implements_the_whole_contract(which: str, request: pytest.FixtureRequest) -> None:
    b = request.getfixturevalue(which)
    check(b, Backend)
    check(b.runtime, Runtime)
    check(b.ledger, Ledger)
    check(b.schedulers, Schedulers)
    check(b.storage, Storage)
    for kind in KINDS:
        check(b.handler(kind), ResourceHandler)
    assert isinstance(b.max_parallel, int) and isinstance(b.scheduler_daemon, bool)
    assert isinstance(b.runtime.poll_backoff, float) and b.runtime.poll_backoff >= 1.0


def test_contract_protocols_are_fully_annotated() -> None:
    """No untyped member in the contract: every parameter and every return is annotated."""
    for proto in (Backend, Runtime, Ledger, Schedulers, Storage, ResourceHandler):
        for name, fn in _members(proto)[0].items():
            sig = inspect.signature(fn)
            assert sig.return_annotation is not inspect.Signature.empty, (proto.__name__, name)
            untyped = [p.name for p in list(sig.parameters.values())[1:] if p.annotation is inspect.Parameter.empty]
            assert not untyped, (proto.__name__, name, untyped)


def test_no_backend_module_imports_the_core() -> None:
    """Backends sit below the core: no module under backends/ imports runs, state, lifecycle or cli."""
    root = Path(base.__file__).parent
    bad = []
    for path in root.rglob("*.py"):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            words = line.strip().split()
            if len(words) >= 2 and words[0] in ("from", "import") and words[1].startswith(
                    ("funnelops.runs", "funnelops.state", "funnelops.lifecycle", "funnelops.cli")):
                bad.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    assert not bad, bad


def test_both_backends_say_where_the_data_is(local, gcp, tmp_path: Path) -> None:
    """`status` and the demo name the warehouse and the quarantine through the contract only."""
    assert local.warehouse_location() == str(tmp_path / "home" / "warehouse.duckdb")
    assert local.data_uri("b", "_quarantine/") == str(tmp_path / "home" / "buckets" / "b" / "_quarantine") + "/"
    assert gcp.warehouse_location() == "BigQuery project p"
    assert gcp.data_uri("b", "_quarantine/") == "gs://b/_quarantine/"


def test_local_query_result_and_relation_stats_of_an_empty_home(local) -> None:
    from funnelops.backends.base import QueryResult, RelationStats

    got = local.read_query_table("SELECT 1 AS one, 'x' AS two UNION ALL SELECT 2, 'y'", max_rows=1)
    assert got == QueryResult(("one", "two"), ((1, "x"),), truncated=True)
    assert local.relation_stats("ds.missing", "table", "period_start") == RelationStats(rows=None)


def test_local_apply_lease_names_its_holder_refuses_a_second_and_is_reentrant(local, tmp_path: Path) -> None:
    """The apply lease through the contract (gcp: tests/integration/gcp/test_apply_lease_gcp.py)."""
    import os

    from funnelops.backends.local import LocalBackend
    from funnelops.errors import RunInProgress

    other = LocalBackend(tmp_path / "home", "p", "us-central1")
    other.templates.create("wf", {"jobs": [{"stepId": "s", "pysparkJob": {"mainPythonFileUri": "s.py"}}]})
    assert local.apply_holder() is None
    with local.apply_lock():
        with local.apply_lock():  # re-entrant within one backend object
            held = other.apply_holder()
            assert held is not None and held.pid == os.getpid() and held.command.startswith("funnelops")
        assert other.apply_holder() == held
        with pytest.raises(RunInProgress) as refused:
            with other.apply_lock():
                pass
        assert refused.value.exit_code == 3 and refused.value.details["apply"]["owner"] == held.owner
        with pytest.raises(RunInProgress):
            other.runtime.acquire("wf", trigger="manual", actor="t")
        assert other.runtime.list() == []  # refused in the lease's transaction: no record left
    assert local.apply_holder() is None
    with other.apply_lock():
        pass
