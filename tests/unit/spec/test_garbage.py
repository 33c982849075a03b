"""Garbage in, located problems out: the loader never raises anything but ProjectError.

Three generators: random YAML-ish text, random nested data dumped to YAML (including data shaped
like a project, so validation goes deep), and mutations of the shipped funnel.yaml (run inside a
copy of its folder, so the schema and SQL files it references resolve).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project

FUNNEL_DIR = Path(__file__).resolve().parents[3] / "projects" / "funnel"
# FUNNELOPS_GARBAGE_EXAMPLES=2000 for a longer hunt
SETTINGS = settings(max_examples=int(os.environ.get("FUNNELOPS_GARBAGE_EXAMPLES", "120")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    n_lines = len(text.splitlines()) + 1  # YAML breaks lines on fewer characters than splitlines
    try:
        load_project(path)
    except ProjectError as exc:
        assert exc.problems, "a ProjectError always carries at least one problem"
        for p in exc.problems:
            if p.file != str(path):  # a flow or SQL file of the project that refers to what the mutation broke
                other = Path(p.file)
                assert other.is_relative_to(path.parent) and other.is_file(), p
                assert p.line is None or 1 <= p.line <= len(other.read_text(encoding="utf-8").splitlines()), p
                continue
            assert p.line is None or (isinstance(p.line, int) and 1 <= p.line <= n_lines), p
            assert isinstance(p.field, str) and p.field
            assert isinstance(p.message, str) and p.message
            p.render()
    # a project that happens to be valid is fine too


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.fixture(scope="module")
def funnel_copy():
    with tempfile.TemporaryDirectory() as d:
        target = Path(d) / "funnel"
        shutil.copytree(FUNNEL_DIR, target)
        yield target


YAMLISH = st.text(alphabet=st.sampled_from(list("abcxyz019 -:_\n\t[]{},'\"&*!|>#%@.?~=\\/")) |
                  st.characters(blacklist_categories=("Cs",)), max_size=200)


@SETTINGS
@given(text=YAMLISH)
def test_random_text(workdir: Path, text: str) -> None:
    check(workdir / "funnel.yaml", text)


TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
KEYS = st.sampled_from(["bool", "str", "[key]", "project", "id", "name", "buckets", "datasets", "tables", "external_tables", "views",
                        "workflows", "schedulers", "jobs", "step_id", "schema", "schema_file", "query",
                        "query_file", "cron", "workflow", "dataset", "bucket", "prefix", "labels", "variables",
                        "stages", "iac", "partitioning", "field", "clustering", "time_zone", "retry",
                        "parameters", "granularity", "type", "mode", "x"]) | TEXT
SCALARS = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) |
           TEXT | st.sampled_from(["demo-project", "ds", "t1", "DATE", "DAY", "0 6 * * *",
                                                   "SELECT * FROM ds.t1", "../x.json", "wf-day", "Día"]))
DATA = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(KEYS, kids, max_size=5),
                    max_leaves=30)


@SETTINGS
@given(data=DATA)
def test_random_data(workdir: Path, data) -> None:
    check(workdir / "funnel.yaml", yaml.safe_dump(data, allow_unicode=True))


@SETTINGS
@given(project=st.fixed_dictionaries({"id": st.sampled_from(["demo-project", "X"])}),
       rest=st.dictionaries(st.sampled_from(["buckets", "datasets", "tables", "external_tables", "views",
                                             "workflows", "schedulers", "variables", "stages"]),
                            st.lists(st.dictionaries(KEYS, DATA, max_size=6), max_size=3) | DATA, max_size=5))
def test_random_project_shaped_data(workdir: Path, project, rest) -> None:
    check(workdir / "funnel.yaml", yaml.safe_dump({"project": project, **rest}, allow_unicode=True))


MUTATION = st.tuples(st.sampled_from(["delete", "duplicate", "swap", "indent", "dedent", "replace", "truncate",
                                      "insert"]),
                     st.integers(0, 10_000), st.integers(0, 10_000), TEXT)


def mutate(lines: list[str], op: str, a: int, b: int, word: str) -> list[str]:
    if not lines:
        return [word]
    i, j = a % len(lines), b % len(lines)
    out = list(lines)
    if op == "delete":
        del out[i]
    elif op == "duplicate":
        out.insert(i, out[i])
    elif op == "swap":
        out[i], out[j] = out[j], out[i]
    elif op == "indent":
        out[i] = "  " + out[i]
    elif op == "dedent":
        out[i] = out[i][2:] if out[i].startswith("  ") else out[i]
    elif op == "replace":  # put `word` in place of one token of the line
        tokens = out[i].split(" ")
        tokens[b % len(tokens)] = word
        out[i] = " ".join(tokens)
    elif op == "truncate":
        out[i] = out[i][: b % (len(out[i]) + 1)]
    elif op == "insert":
        out.insert(i, " " * (b % 7) + word)
    return out


@SETTINGS
@given(mutations=st.lists(MUTATION, min_size=1, max_size=4))
def test_mutations_of_the_real_project(funnel_copy: Path, mutations) -> None:
    lines = (FUNNEL_DIR / "funnel.yaml").read_text(encoding="utf-8").splitlines()
    for m in mutations:
        lines = mutate(lines, *m)
    check(funnel_copy / "funnel.yaml", "\n".join(lines) + "\n")


def test_the_shipped_project_is_valid() -> None:
    loaded = load_project(FUNNEL_DIR / "funnel.yaml")
    assert len(loaded.spec.workflows) == 4 and len(loaded.spec.schedulers) == 4
