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


def test_rows_is_exactly_the_number_asked(tmp_path, funnel):
    """`--rows N` writes N raw rows across the CSV entities (it wrote 987,260 of 1,000,000)."""
    for n, start, end in ((10_000, date(2024, 1, 1), date(2024, 3, 31)), (4_999, date(2024, 1, 1), date(2024, 1, 20)),
                          (12_347, date(2023, 12, 20), date(2024, 1, 9)), (7, date(2024, 1, 1), date(2024, 1, 3))):
        home = tmp_path / str(n)
        report = generate_raw(funnel, home, n, start, end, seed=5)
        root = home / "buckets" / "analitica-funnel-raw"
        data_lines = sum(len(p.read_text(encoding="utf-8-sig").splitlines()) - 1
                         for p in root.glob("FUNNEL/TERADATA/**/*.csv"))
        assert (report.rows, data_lines) == (n, n)
        assert "(as asked)" in report.summary()


def test_exact_rows_keep_every_kept_line_consistent(tmp_path, funnel):
    """The overshoot left out of the last lead never leaves a deal without its opportunity."""
    import csv

    generate_raw(funnel, tmp_path, 3_001, date(2024, 1, 1), date(2024, 2, 29), seed=11)
    root = tmp_path / "buckets" / "analitica-funnel-raw" / "FUNNEL" / "TERADATA"

    def ids(entity: str, col: str) -> set[str]:
        out = set()
        for p in root.glob(f"{entity}/**/*.csv"):
            with open(p, encoding="utf-8-sig", newline="") as fh:
                out |= {r[col] for r in csv.DictReader(fh)}
        return out

    assert ids("won_deals", "ID_OPORTUNIDAD") - {""} <= ids("opportunities", "ID_OPORTUNIDAD")
    assert ids("opportunities", "ID_LEAD") - {""} <= ids("leads", "ID_LEAD")


def test_progress_is_reported_as_files_land(tmp_path, funnel):
    from funnelops.reporting import Progress, RecordingReporter

    rec = RecordingReporter()
    generate_raw(funnel, tmp_path, 2_000, date(2024, 1, 1), date(2024, 1, 10), seed=2, reporter=rec)
    events = rec.of(Progress)
    assert events[0].done == 0 and all(e.total == 2_000 and e.unit == "rows" for e in events)
    dones = [e.done for e in events]
    assert dones == sorted(dones) and dones[-1] == 2_000 and len(dones) > 10  # one per file, not one at the end
    assert events[-1].finished and "files" in events[-1].detail
