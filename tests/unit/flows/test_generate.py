"""The example project's raw data generator (projects/funnel/generate.py, loaded by path as
funnelops does): deterministic, in the delivered layout, with the dirt it reports."""

import hashlib
from datetime import date
from pathlib import Path

from funnelops.cli.data_cmd import run_generate
from funnelops.lifecycle.sample_data import generate_raw, load_generator

PROJECT = Path(__file__).resolve().parents[3] / "projects" / "funnel" / "funnel.yaml"


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.glob("FUNNEL/TERADATA/**/*.csv")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_files_and_layout(tmp_path, funnel):
    a = generate_raw(funnel, tmp_path / "a", 20000, date(2024, 1, 30), date(2024, 2, 2), seed=3)
    b = generate_raw(funnel, tmp_path / "b", 20000, date(2024, 1, 30), date(2024, 2, 2), seed=3)
    generate_raw(funnel, tmp_path / "c", 20000, date(2024, 1, 30), date(2024, 2, 2), seed=4)
    root = tmp_path / "a" / "buckets" / "analitica-funnel-raw"
    assert _digest(root) == _digest(tmp_path / "b" / "buckets" / "analitica-funnel-raw")
    assert _digest(root) != _digest(tmp_path / "c" / "buckets" / "analitica-funnel-raw")
    assert a.rows_by_entity == b.rows_by_entity and a.dirty == b.dirty
    # one extract per entity and day (header-only when a day has no rows), one workbook per month
    assert a.csv_files == 4 * 4 and a.target_files == 2
    assert (root / "FUNNEL/TERADATA/won_deals/2024/01/won_deals_20240130.csv").read_text().startswith("ID_NEGOCIO,")
    assert (root / "FUNNEL/EXCEL/metas/2024/metas_202402.xlsx").is_file()
    first = (root / "FUNNEL/TERADATA/leads/2024/01/leads_20240130.csv").read_bytes()
    assert first.startswith(b"\xef\xbb\xbfID_LEAD,") and a.bom_files == ["FUNNEL/TERADATA/leads/2024/01/leads_20240130.csv"]
    text = b"".join(p.read_bytes() for p in root.glob("FUNNEL/TERADATA/leads/**/*.csv")).decode()
    assert "Bogotá" in text or "Medellín" in text
    assert sum(a.rows_by_entity.values()) == a.rows
    data_lines = sum(len(p.read_text(encoding="utf-8-sig").splitlines()) - 1
                     for p in root.glob("FUNNEL/TERADATA/**/*.csv"))
    assert data_lines == a.rows


def test_every_dirty_kind_is_present_and_mapped(tmp_path, funnel):
    r = generate_raw(funnel, tmp_path, 60000, date(2024, 1, 1), date(2024, 1, 31), seed=9)
    assert set(r.dirty) == set(load_generator(funnel).EXPECTED_RULE)
    assert all(n > 0 for n in r.dirty.values())
    assert 0.01 < sum(r.dirty.values()) / r.rows < 0.04


def test_cli_function_prints_summary(tmp_path, capsys):
    report = run_generate(PROJECT, tmp_path, rows=500, start=date(2024, 3, 1), end=date(2024, 3, 3), seed=1)
    out = capsys.readouterr().out
    assert f"generated {report['rows']:,} rows" in out and "dirty rows:" in out
