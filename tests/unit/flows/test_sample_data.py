"""A project's sample-data generator: declared in the project (`data.generator`), loaded by path,
confined to the project folder; a project without one is told so (exit 2, with a hint)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from funnelops.errors import ProjectError, UsageError
from funnelops.lifecycle.sample_data import generate_raw, load_generator
from funnelops.spec.loader import load_project

BASE = """project:
  id: tiny-project
buckets:
  - {name: tiny-raw, role: raw}
"""

TINY_GENERATOR = '''
from dataclasses import asdict, dataclass

TREES = ("IN/orders",)


@dataclass
class Report:
    bucket_dir: str
    rows: int

    def to_dict(self):
        return asdict(self)


def generate(dest, rows, start, end, seed):
    folder = dest / "IN" / "orders"
    folder.mkdir(parents=True)
    (folder / f"orders_{start:%Y%m%d}.csv").write_text("ID\\n" + "".join(f"{seed}-{i}\\n" for i in range(rows)))
    return Report(bucket_dir=str(dest), rows=rows)
'''


def _project(root: Path, data: str = "", generator: str | None = TINY_GENERATOR) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if generator is not None:
        (root / "make_data.py").write_text(generator, encoding="utf-8")
    path = root / "funnel.yaml"
    path.write_text(BASE + data, encoding="utf-8")
    return path


def test_a_declared_generator_is_loaded_by_path_and_its_trees_land_in_the_raw_bucket(tmp_path):
    loaded = load_project(_project(tmp_path / "p", "data: {generator: make_data.py}\n"))
    report = generate_raw(loaded, tmp_path / "home", 3, date(2024, 5, 1), date(2024, 5, 1), seed=7)
    out = tmp_path / "home" / "buckets" / "tiny-raw" / "IN" / "orders" / "orders_20240501.csv"
    assert out.read_text() == "ID\n7-0\n7-1\n7-2\n"
    assert report.bucket_dir == str(tmp_path / "home" / "buckets" / "tiny-raw") and report.rows == 3
    assert list((tmp_path / "home" / "tmp").iterdir()) == []  # the scratch folder is gone


def test_a_project_without_a_generator_is_refused_with_a_hint(tmp_path):
    loaded = load_project(_project(tmp_path / "p", generator=None))
    with pytest.raises(UsageError) as err:
        load_generator(loaded)
    assert "declares no sample-data generator" in str(err.value) and "data: {generator:" in (err.value.hint or "")


def test_data_generate_without_a_generator_exits_2_and_writes_nothing(tmp_path):
    project, home = _project(tmp_path / "p", generator=None), tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    r = subprocess.run([sys.executable, "-m", "funnelops", "--project", str(project), "--home", str(home),
                        "data", "generate", "--rows", "10"], env={**env, "NO_COLOR": "1", "COLUMNS": "200"},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "declares no sample-data generator" in r.stderr and "generator:" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (home / "buckets").exists()


@pytest.mark.parametrize("generator", ["/etc/evil.py", "../evil.py", "outside/evil.py", "my_pkg.gen",
                                       "missing.py", "make_data.sh"])
def test_a_generator_outside_the_project_is_a_located_error(tmp_path, generator):
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "evil.py").write_text("raise SystemExit(9)\n")
    root = tmp_path / "p"
    root.mkdir()
    (root / "outside").symlink_to(tmp_path / "evil")  # inside by name, outside once resolved
    with pytest.raises(ProjectError) as err:
        load_project(_project(root, f"data:\n  generator: '{generator}'\n"))
    [problem] = err.value.problems
    assert problem.field == "data.generator" and problem.line == 6, problem.render()


def test_a_generator_that_breaks_the_contract_is_refused(tmp_path):
    loaded = load_project(_project(tmp_path / "p", "data: {generator: make_data.py}\n",
                                   generator="TREES = ('../escape',)\ndef generate(*a): pass\n"))
    with pytest.raises(UsageError, match="TREES entry"):
        load_generator(loaded)
