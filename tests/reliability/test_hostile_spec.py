"""Hostile project definitions: each must end in a located refusal, fast, never a hang or a crash.

Covers issue #9 items 11 (`main` confinement), 12 (reserved variable names, runtime flags last),
14 (alias bombs, huge files, devices and FIFOs), 17 (rich markup in `status`, a 5,001-digit
integer, oversized variables, the home's permissions).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project

pytestmark = pytest.mark.reliability

P = "project:\n  id: demo-project\n"
WF = "workflows:\n  - name: wf-day\n    granularity: DAY\n    jobs:\n      - step_id: step-one\n"


def write(tmp: Path, text: str, name: str = "funnel.yaml") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list:
    with pytest.raises(ProjectError) as err:
        load_project(path)
    return err.value.problems


def the_problem(path: Path, field: str, says: str, line: int | None = None):
    probs = problems_of(path)
    hits = [p for p in probs if field in p.field and says.lower() in (p.message + " " + (p.hint or "")).lower()]
    assert hits, "\n".join(p.render() for p in probs)
    if line is not None:
        assert hits[0].line == line, hits[0].render()
    return hits[0]


# -- 14: alias bombs, file size, file type ----------------------------------------------------------

def billion_laughs(levels: int) -> str:
    lines = [P.rstrip("\n"), 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [7, 9])
def test_alias_bomb_is_refused_fast(tmp_path, levels):
    path = write(tmp_path, billion_laughs(levels))
    t0 = time.monotonic()
    problem = the_problem(path, "", "expands to more than 100,000 values")
    assert time.monotonic() - t0 < 2
    assert problem.line is not None and problem.line > 2


def test_a_few_aliases_still_work(tmp_path):
    path = write(tmp_path, P + "variables:\n  region: &r us-east1\n  other_region: *r\n")
    assert load_project(path).spec.variables == {"region": "us-east1", "other_region": "us-east1"}


def test_dev_zero_is_refused_not_read(tmp_path):
    the_problem(Path("/dev/zero"), "(file)", "is a device, not a regular file")


def no_hang(fn, *fifos: Path, timeout: float = 5):
    """fn() in a thread; if it blocks (reading a FIFO), unblock it by opening the FIFOs and fail."""
    out: list = []
    errors: list = []

    def target():
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        for fifo in fifos:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK) if t.is_alive() else None
            if fd is not None:
                os.close(fd)
        pytest.fail("reading a FIFO hung")
    if errors:
        raise errors[0]
    return out[0]


def test_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "funnel.yaml"
    os.mkfifo(fifo)
    problems = no_hang(lambda: problems_of(fifo), fifo)
    assert "FIFO" in problems[0].message


def test_directory_is_refused(tmp_path):
    the_problem(tmp_path, "(file)", "is a directory")


def test_oversized_project_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "funnel.yaml"
    with open(path, "wb") as fh:
        fh.write(P.encode())
        fh.truncate(6 * 1024 * 1024)  # sparse: a 6 MB file without writing 6 MB
    the_problem(path, "(file)", "limited to 5,242,880 bytes")


def test_schema_file_that_is_a_fifo_or_huge_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe.json")
    with open(tmp_path / "huge.json", "wb") as fh:
        fh.truncate(6 * 1024 * 1024)
    path = write(tmp_path, P + "datasets: [{id: ds}]\ntables:\n"
                 "  - {dataset: ds, name: t1, schema_file: pipe.json}\n"
                 "  - {dataset: ds, name: t2, schema_file: huge.json}\n")
    no_hang(lambda: the_problem(path, "tables[t1].schema_file", "FIFO", line=5), tmp_path / "pipe.json")
    the_problem(path, "tables[t2].schema_file", "limited to", line=6)


def test_view_query_file_that_is_a_fifo_is_refused(tmp_path):
    os.mkfifo(tmp_path / "v.sql")
    path = write(tmp_path, P + "datasets: [{id: ds}]\nviews:\n  - {dataset: ds, name: v, query_file: v.sql}\n")
    no_hang(lambda: the_problem(path, "views[v].query_file", "FIFO", line=5), tmp_path / "v.sql")


def test_refined_sql_that_is_a_fifo_is_refused(tmp_path):
    from funnelops.flows.registry import FlowDefinitionError, load_refined

    (tmp_path / "sql" / "refined").mkdir(parents=True)
    os.mkfifo(tmp_path / "sql" / "refined" / "f.sql")
    with pytest.raises(FlowDefinitionError, match="FIFO"):
        no_hang(lambda: load_refined(tmp_path, "f"), tmp_path / "sql" / "refined" / "f.sql")


# -- 17b: integers beyond Python's digit limit -------------------------------------------------------

def test_giant_integer_is_a_located_error(tmp_path):
    path = write(tmp_path, P + "variables:\n  n: " + "9" * 5001 + "\n")
    problem = the_problem(path, "variables.n", "cannot be read as int", line=4)
    assert "5,001 characters" in problem.message and len(problem.message) < 300


def test_giant_integer_key_and_bad_timestamp_are_located(tmp_path):
    path = write(tmp_path, P + "variables:\n  ? " + "7" * 5001 + "\n  : x\n  d: 2024-13-45\n")
    the_problem(path, "variables", "cannot be read as int", line=4)
    the_problem(path, "variables.d", "cannot be read as timestamp", line=6)
