"""Benchmark of the Funnel data flows: `python bench/flows.py [--rows N] [--pyspark-rows M]`.

1. generate N raw rows once (a year of daily extracts);
2. time the initial load as the lifecycle runs it: the DAY, MONTH and YEAR workflows at once with
   `--execution_type=full --refined_flows=false`, then the three again with `--trusted_flows=false`;
   peak RSS is the largest child process (getrusage RUSAGE_CHILDREN);
3. time the same result written directly as DuckDB SQL (one process: each entity read, typed,
   checked, deduplicated and written as partitions plus quarantine once; the refined SQL for
   the three granularities into the warehouse);
4. time the trusted flows on PySpark local[2] at M rows (input staged as Parquet, JVM start
   excluded and reported apart).
The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "projects" / "funnel" / "funnel.yaml"
START, END = date(2024, 1, 1), date(2024, 12, 31)
TS = "'%Y-%m-%d %H:%M:%S'"
ENTITIES = {  # entity: (raw columns, id columns, date column, amount column, stage column)
    "leads": (("ID_LEAD", "FECHA_CREACION", "CANAL", "SEGMENTO", "REGION", "CIUDAD", "ASESOR", "EMPRESA",
               "MONTO_ESTIMADO_COP"), ("ID_LEAD",), "FECHA_CREACION", "MONTO_ESTIMADO_COP", None),
    "stage_changes": (("ID_CAMBIO", "ID_LEAD", "ETAPA", "FECHA_CAMBIO", "ASESOR"), ("ID_CAMBIO", "ID_LEAD"),
                      "FECHA_CAMBIO", None, "ETAPA"),
    "opportunities": (("ID_OPORTUNIDAD", "ID_LEAD", "FECHA_APERTURA", "PRODUCTO", "MONTO_COP", "ASESOR"),
                      ("ID_OPORTUNIDAD", "ID_LEAD"), "FECHA_APERTURA", "MONTO_COP", None),
    "won_deals": (("ID_NEGOCIO", "ID_OPORTUNIDAD", "ID_LEAD", "FECHA_CIERRE", "MONTO_COP", "ASESOR"),
                  ("ID_NEGOCIO", "ID_LEAD"), "FECHA_CIERRE", "MONTO_COP", None),
}

NAMES = {"leads": ("lead_id", "created_at", "channel", "segment", "region", "city", "sales_rep", "company",
                   "estimated_amount_cop"),
         "stage_changes": ("change_id", "lead_id", "stage", "changed_at", "sales_rep"),
         "opportunities": ("opportunity_id", "lead_id", "opened_at", "product", "amount_cop", "sales_rep"),
         "won_deals": ("deal_id", "opportunity_id", "lead_id", "won_at", "amount_cop", "sales_rep")}


def _env(home: Path) -> dict:
    return dict(os.environ, FUNNELOPS_PROJECT=str(PROJECT), FUNNELOPS_HOME=str(home))


def initial_load(home: Path) -> tuple[float, float]:
    t0 = time.perf_counter()
    for layer in ("--refined_flows=false", "--trusted_flows=false"):
        procs = [subprocess.Popen([sys.executable, "-m", "funnelops.flows", f"--granularity={g}",
                                   "--execution_type=full", layer], env=_env(home), stdout=subprocess.DEVNULL)
                 for g in ("DAY", "MONTH", "YEAR")]
        if any(p.wait() for p in procs):
            raise SystemExit("a flows run failed")
        if layer.startswith("--refined"):
            trusted_s = time.perf_counter() - t0
    return time.perf_counter() - t0, trusted_s


def baseline(home: Path) -> None:
    """The same result as the initial load, as hand-written DuckDB SQL (runs in a child process)."""
    import duckdb

    from funnelops.flows import raw as rawmod
    from funnelops.flows.registry import load_refined, load_trusted
    from funnelops.spec.loader import load_project
    from funnelops.spec.sqlrefs import to_duckdb

    loaded = load_project(PROJECT)
    raw = home / "buckets" / "analitica-funnel-raw"
    out = home / "buckets" / "baseline-trusted"
    shutil.rmtree(out, ignore_errors=True)
    (out / "_quarantine").mkdir(parents=True)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'America/Bogota'")
    for ent, (cols, ids, dcol, acol, scol) in ENTITIES.items():
        files = sorted(raw.glob(f"FUNNEL/TERADATA/{ent}/*/*/*.csv"))
        paths = "[" + ", ".join(f"'{p}'" for p in files) + "]"
        schema = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in cols) + "}"
        amount = (f"CASE WHEN regexp_matches(trim({acol}), '^-?[0-9]{{1,15}}(\\.[0-9]{{1,2}})?$') "
                  f"THEN CAST(trim({acol}) AS DECIMAL(18,2)) END") if acol else "NULL"
        stage = (f"CASE lower(trim({scol})) WHEN 'calificado' THEN 'qualified' WHEN 'oportunidad' THEN "
                 f"'opportunity' WHEN 'ganado' THEN 'won' WHEN 'perdido' THEN 'lost' END") if scol else "NULL"
        rule = (f"CASE WHEN {' OR '.join(f'nullif(trim({i}), {chr(39)}{chr(39)}) IS NULL' for i in ids)} THEN 'id_not_null' "
                f"WHEN ts IS NULL THEN 'parsable_date' "
                + ("WHEN amount IS NULL THEN 'amount_numeric' WHEN amount < 0 THEN 'amount_non_negative' " if acol else "")
                + ("WHEN stage IS NULL THEN 'known_stage' " if scol else "") + "END")
        con.execute(f"""CREATE OR REPLACE TABLE t AS
            WITH s AS (SELECT *, file_index AS fi, row_number() OVER () AS rn FROM read_csv({paths},
                         header = true, columns = {schema}, auto_detect = false, store_rejects = true)),
            typed AS (SELECT *, CASE WHEN regexp_matches(trim({dcol}), '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}} [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}$')
                                THEN try_strptime(trim({dcol}), {TS}) END AS ts, {amount} AS amount, {stage} AS stage FROM s),
            ruled AS (SELECT *, {rule} AS r FROM typed)
            SELECT * EXCLUDE (r), coalesce(r, CASE WHEN row_number() OVER (PARTITION BY trim({ids[0]}), r IS NULL
                   ORDER BY rn) > 1 THEN 'duplicate' END) AS dq_rule FROM ruled""")
        names = dict(zip(cols, NAMES[ent]))
        keep = ", ".join(f"nullif(trim({c}), '') AS {names[c]}" for c in cols if c not in (dcol, acol, scol))
        keep += f", ts AS {names[dcol]}" + (f", amount AS {names[acol]}" if acol else "") + (", stage" if scol else "")
        con.execute(f"COPY (SELECT {keep}, CAST(ts AS DATE) AS event_date FROM t "
                    f"WHERE dq_rule IS NULL) TO '{out / ent}' (FORMAT parquet, PARTITION_BY (event_date))")
        con.execute(f"""COPY (SELECT dq_rule, fi, rn, concat_ws(',', {', '.join(f'coalesce({c}, {chr(39)}{chr(39)})' for c in cols)}) AS rec,
                              CAST(regexp_extract(filename, '(\\d{{8}})\\.csv$', 1) AS VARCHAR) AS extract_day
                       FROM (SELECT *, {paths}[CAST(fi AS BIGINT) + 1] AS filename FROM t WHERE dq_rule IS NOT NULL)
                       UNION ALL SELECT 'column_count', file_id, line, csv_line, '0' FROM reject_errors)
                    TO '{out / '_quarantine' / ent}' (FORMAT parquet, PARTITION_BY (extract_day))""")
    targets = load_trusted(loaded.base_dir, "targets")
    tfiles = rawmod.source_files(raw, targets.FILES, None)
    rawmod.stage(con, "stg_targets", raw, tfiles, tuple(targets.COLUMNS))
    con.execute(f"COPY (SELECT *, CAST(MES || '-01' AS DATE) AS event_date FROM stg_targets WHERE META_MONTO_COP "
                f"IS NOT NULL) TO '{out / 'targets'}' (FORMAT parquet, PARTITION_BY (event_date))")
    # refined: the project's SQL over the baseline's trusted folders, into a scratch warehouse
    wh = duckdb.connect(str(home / "baseline.duckdb"))
    wh.execute("SET TimeZone = 'America/Bogota'")
    for ds, t in (("funnel_trusted", e) for e in (*ENTITIES, "targets")):
        wh.execute(f"CREATE SCHEMA IF NOT EXISTS {ds}")
        wh.execute(f"CREATE OR REPLACE VIEW {ds}.{t} AS SELECT * FROM read_parquet('{out / t}/**/*.parquet', "
                   f"hive_partitioning = true)" if t != "targets" else
                   f"CREATE OR REPLACE VIEW {ds}.{t} AS SELECT CAST(MES || '-01' AS DATE) AS month, CANAL AS channel, "
                   f"SEGMENTO AS segment, CAST(META_NEGOCIOS AS BIGINT) AS target_won_count, CAST(META_MONTO_COP AS "
                   f"DECIMAL(18,2)) AS target_amount_cop FROM read_parquet('{out / t}/**/*.parquet', hive_partitioning = true)")
    wh.execute("CREATE SCHEMA IF NOT EXISTS funnel_refined")
    for gran in ("DAY", "MONTH", "YEAR"):
        for name in ("funnel", "attainment", "dim_indicators"):
            flow = load_refined(loaded.base_dir, name)
            if gran not in flow.granularities:
                continue
            sql = to_duckdb(flow.sql)
            params = {k: v for k, v in {"granularity": gran, "period_start": date(1, 1, 1),
                                        "period_end": date(9999, 12, 31)}.items() if f"${k}" in sql}
            wh.execute(f"CREATE OR REPLACE TABLE funnel_refined.{name}_{gran.lower()} AS {sql}", params)
    wh.close()


def pyspark_trusted(rows: int, work: Path) -> tuple[float, float]:
    from funnelops.flows import raw as rawmod
    from funnelops.flows.engine import SparkEngine, activate
    from funnelops.lifecycle.sample_data import generate_raw
    from funnelops.flows.registry import load_trusted, trusted_names
    from funnelops.spec.loader import load_project
    import duckdb

    loaded = load_project(PROJECT)
    generate_raw(loaded, work, rows, START, END, seed=1)
    raw = work / "buckets" / "analitica-funnel-raw"
    con = duckdb.connect()
    inputs = {}
    for name in trusted_names(loaded.base_dir):
        m = load_trusted(loaded.base_dir, name)
        s = rawmod.stage(con, f"stg_{name}", raw, rawmod.source_files(raw, m.FILES, None), tuple(m.COLUMNS))
        inputs[name] = work / f"{name}.parquet"
        con.execute(f"COPY (SELECT * FROM {s.view}) TO '{inputs[name]}' (FORMAT parquet)")
    t0 = time.perf_counter()
    activate("spark")
    spark = SparkEngine("America/Bogota", master="local[2]")
    jvm_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for name, path in inputs.items():
        m = load_trusted(loaded.base_dir, name)
        spark.write_partitioned(m.transform(spark.read_parquet(str(path))), str(work / "out" / name), m.PARTITION)
    secs = time.perf_counter() - t0
    spark.close()
    return secs, jvm_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--pyspark-rows", type=int, default=200_000)
    ap.add_argument("--dir", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--baseline-home", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.baseline_home:
        return baseline(Path(a.baseline_home))
    from funnelops.lifecycle.sample_data import generate_raw
    from funnelops.backends.local import LocalBackend
    from funnelops.plan.apply import apply_plan
    from funnelops.plan.diff import build_plan
    from funnelops.spec.loader import load_project

    home = Path(a.dir) / f"flows-{a.rows}"
    shutil.rmtree(home, ignore_errors=True)
    loaded = load_project(PROJECT)
    t0 = time.perf_counter()
    report = generate_raw(loaded, home, a.rows, START, END, seed=42)
    print(f"generate: {report.rows:,} rows in {time.perf_counter() - t0:.1f}s", flush=True)
    backend = LocalBackend.for_project(loaded, home)
    apply_plan(build_plan(loaded, backend, "iac"), backend)  # the real create-infra path
    load_s, trusted_s = initial_load(home)
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"initial load (DAY+MONTH+YEAR, trusted+refined): {load_s:.1f}s (trusted phase {trusted_s:.1f}s), "
          f"peak child RSS {rss_mb:.0f} MB", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--baseline-home", str(home)], check=True)
    sql_s = time.perf_counter() - t0
    print(f"same work as DuckDB SQL: {sql_s:.1f}s", flush=True)
    spark_home = Path(a.dir) / f"flows-pyspark-{a.pyspark_rows}"
    shutil.rmtree(spark_home, ignore_errors=True)
    spark_s, jvm_s = pyspark_trusted(a.pyspark_rows, spark_home)
    print(f"trusted flows on PySpark local[2]: {a.pyspark_rows:,} rows in {spark_s:.1f}s (+{jvm_s:.1f}s JVM start)",
          flush=True)
    speedup = (spark_s / a.pyspark_rows) / (trusted_s / report.rows)
    print(json.dumps({"rows": report.rows, "load_s": round(load_s, 2), "duckdb_sql_s": round(sql_s, 2),
                      "ratio_vs_duckdb_sql": round(load_s / sql_s, 2), "pyspark_rows": a.pyspark_rows,
                      "pyspark_s": round(spark_s, 2), "speedup_vs_pyspark": round(speedup, 1),
                      "peak_rss_mb": round(rss_mb), "trusted_s": round(trusted_s, 2), "jvm_start_s": round(jvm_s, 2)}))


if __name__ == "__main__":
    main()
