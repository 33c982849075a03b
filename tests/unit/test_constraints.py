"""constraints.txt (the lock `make lock` writes) pins every dependency pyproject.toml declares.

A pyproject.toml edit without `make lock` fails here: a new dependency has no pin, or a changed
bound no longer admits the pinned version; CI and the pipelines would then install versions the
suite never ran with. The cluster's own pinned set must agree with it where the two overlap.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "src/funnelops/backends/gcp/cluster/requirements.txt"


def pins(path: Path) -> dict[str, Version]:
    """name -> pinned version of a `name==version` per line file (comments and annotations ignored)."""
    out: dict[str, Version] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", text)
        assert m, f"{path.name}:{n}: not a `name==version` pin: {line!r}"
        name = canonicalize_name(m.group(1))
        assert name not in out, f"{path.name}:{n}: {name} pinned twice"
        out[name] = Version(m.group(2))
    return out


def declared(pyproject: Path = ROOT / "pyproject.toml") -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in project.get("optional-dependencies", {}).values():
        reqs += [Requirement(r) for r in extra]
    return reqs


def stale(pyproject: Path, constraints: Path) -> list[str]:
    """What pyproject.toml declares that constraints.txt does not pin, or pins outside its bounds."""
    locked = pins(constraints)
    problems = []
    for req in declared(pyproject):
        name = canonicalize_name(req.name)
        if name not in locked:
            problems.append(f"{req} is not pinned")
        elif not req.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{req}: the pin {name}=={locked[name]} is outside {req.specifier}")
    return problems


def test_every_declared_dependency_is_pinned_within_its_bounds() -> None:
    problems = stale(ROOT / "pyproject.toml", ROOT / "constraints.txt")
    assert not problems, "constraints.txt is stale; run `make lock`:\n" + "\n".join(problems)


def test_a_pyproject_edit_without_make_lock_is_caught(tmp_path: Path) -> None:
    text = (ROOT / "pyproject.toml").read_text()
    edited = text.replace('"duckdb>=1.1",', '"duckdb>=99",').replace('"croniter>=2.0",', '"croniter>=2.0",\n  "left-pad>=1",')
    assert edited != text
    (tmp_path / "pyproject.toml").write_text(edited)
    problems = stale(tmp_path / "pyproject.toml", ROOT / "constraints.txt")
    assert any(p.startswith("duckdb>=99: the pin duckdb==") for p in problems), problems
    assert "left-pad>=1 is not pinned" in problems


def test_the_lock_does_not_pin_funnelops_itself_and_says_how_to_refresh() -> None:
    text = (ROOT / "constraints.txt").read_text()
    assert "funnelops" not in pins(ROOT / "constraints.txt")
    assert "make lock" in text.split("\n\n")[0] and "CPython 3.11" in text


def test_the_cluster_pins_agree_with_the_lock_where_they_overlap() -> None:
    locked, cluster = pins(ROOT / "constraints.txt"), pins(CLUSTER)
    differ = {n: (str(v), str(locked[n])) for n, v in cluster.items() if n in locked and locked[n] != v}
    assert not differ, f"cluster requirements.txt vs constraints.txt (cluster, lock): {differ}"
