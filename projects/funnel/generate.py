"""Realistic raw data for the Funnel: daily CSV extracts and monthly Excel targets.

The raw layer looks the way the Funnel's sources deliver it: one CSV per entity and day from the
sales system (Teradata) and one workbook of targets per month. Everything is computed with DuckDB
SQL from a seeded hash of the row number (never Python loops per row), so ten million rows take
seconds and the same seed gives byte-identical files.

Dirty rows are *extra* rows next to the clean ones (a duplicate copy, or a corrupted copy with its
own new id), so the clean data stays consistent and each dirty row maps to exactly one quarantine
rule. The report counts every kind; `EXPECTED_RULE` says which rule each kind must trip.

This is the project's sample-data generator (`data: {generator: generate.py}` in funnel.yaml).
funnelops loads it by path for `funnelops data generate` and `funnelops demo` and keeps the safety
on its side (no run in progress, no silent overwrite, files written aside then renamed into the
raw bucket); this module only makes the data. Its contract, checked by
:mod:`funnelops.lifecycle.sample_data`:

- `TREES`: the folders inside the raw bucket this generator owns (each replaced whole);
- `generate(dest, rows, start, end, seed)`: write every file under `dest` (a scratch folder laid
  out like the raw bucket) and return a report with `to_dict()`, a `bucket_dir` attribute that
  funnelops sets to where the files end up, and optionally `summary()` (the CLI's text).

It needs only DuckDB and openpyxl (both funnelops dependencies), not funnelops itself.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from collections.abc import Callable

CHANNELS = ["Web", "Referido", "Llamada en frío", "Evento", "Aliado comercial"]
SEGMENTS = ["Pyme", "Corporativo", "Gobierno", "Persona natural"]
CITIES = ["Bogotá", "Medellín", "Cali", "Barranquilla", "Cartagena", "Bucaramanga", "Pereira",
          "Cúcuta", "Villavicencio", "Santa Marta", "Leticia", "Ibagué"]
REGIONS = ["Andina", "Andina", "Pacífico", "Caribe", "Caribe", "Andina", "Andina", "Andina",
           "Orinoquía", "Caribe", "Amazonía", "Andina"]
REPS = ["José Gómez", "María Fernanda Pérez", "Andrés Muñoz", "Lucía Rodríguez", "Sebastián Castaño",
        "Valentina Ospina", "Óscar Peña", "Ángela Martínez", "Julián Ibáñez", "Camila Zúñiga",
        "Nicolás Londoño", "Daniela Suárez"]
COMPANY_A = ["Comercializadora", "Inversiones", "Distribuidora", "Tecnología", "Soluciones",
             "Constructora", "Agroindustrias", "Logística"]
COMPANY_B = ["Andina", "del Café", "Caribeña", "El Poblado", "La Montaña", "Pacífico Sur",
             "Llanos Orientales", "Ñandú"]
COMPANY_C = ["S.A.S.", "Ltda.", "S.A.", "& Cía."]
PRODUCTS = ["Crédito empresarial", "Cuenta de nómina", "Leasing financiero", "Seguro de vida grupo",
            "Factoring", "Tarjeta corporativa"]
SEGMENT_BASE_COP = [15_000_000, 120_000_000, 300_000_000, 4_000_000]

# dirty kind -> the data-quality rule the trusted flows must quarantine it under
EXPECTED_RULE = {
    "duplicate": "duplicate", "malformed_date": "parsable_date", "missing_id": "id_not_null",
    "too_many_columns": "column_count", "negative_amount": "amount_non_negative",
    "non_numeric_amount": "amount_numeric", "unknown_stage": "known_stage",
    "missing_target": "target_present",
}
# share of clean rows that get a dirty companion, per kind (cumulative buckets of one hash)
DIRTY_RATES = {"duplicate": 0.005, "malformed_date": 0.003, "missing_id": 0.002,
               "too_many_columns": 0.001, "negative_amount": 0.002, "non_numeric_amount": 0.002,
               "unknown_stage": 0.003}
ROWS_PER_LEAD = 2.45  # leads + stage changes + opportunities + won deals, on average


@dataclass(frozen=True)
class Entity:
    name: str
    header: tuple[str, ...]
    id_col: str
    id_format: str          # printf format of a new id for corrupted copies
    date_col: str
    amount_col: str | None = None
    stage_col: str | None = None


ENTITIES = (
    Entity("leads", ("ID_LEAD", "FECHA_CREACION", "CANAL", "SEGMENTO", "REGION", "CIUDAD", "ASESOR",
                     "EMPRESA", "MONTO_ESTIMADO_COP"), "ID_LEAD", "L%09d", "FECHA_CREACION",
           amount_col="MONTO_ESTIMADO_COP"),
    Entity("stage_changes", ("ID_CAMBIO", "ID_LEAD", "ETAPA", "FECHA_CAMBIO", "ASESOR"), "ID_CAMBIO",
           "C%010d", "FECHA_CAMBIO", stage_col="ETAPA"),
    Entity("opportunities", ("ID_OPORTUNIDAD", "ID_LEAD", "FECHA_APERTURA", "PRODUCTO", "MONTO_COP",
                             "ASESOR"), "ID_OPORTUNIDAD", "O%09d", "FECHA_APERTURA", amount_col="MONTO_COP"),
    Entity("won_deals", ("ID_NEGOCIO", "ID_OPORTUNIDAD", "ID_LEAD", "FECHA_CIERRE", "MONTO_COP", "ASESOR"),
           "ID_NEGOCIO", "N%09d", "FECHA_CIERRE", amount_col="MONTO_COP"),
)
TARGET_HEADER = ("MES", "CANAL", "SEGMENTO", "META_NEGOCIOS", "META_MONTO_COP")


@dataclass
class GenerateReport:
    """What was written: rows per entity, dirty rows per entity and kind, files."""

    bucket_dir: str
    start: str
    end: str
    seed: int
    rows: int = 0
    rows_by_entity: dict[str, int] = field(default_factory=dict)
    dirty: dict[str, int] = field(default_factory=dict)
    dirty_by_entity: dict[str, dict[str, int]] = field(default_factory=dict)
    csv_files: int = 0
    target_files: int = 0
    target_rows: int = 0
    bom_files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    rows_requested: int = 0

    def expected_quarantine(self) -> dict[str, dict[str, int]]:
        """Per entity: rule -> rows the trusted flows must quarantine."""
        return {e: {EXPECTED_RULE[k]: n for k, n in kinds.items() if n}
                for e, kinds in self.dirty_by_entity.items()}

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """What `funnelops data generate` prints: volumes, where the files went, the dirt."""
        dirty = ", ".join(f"{k}={v}" for k, v in self.dirty.items())
        asked = "as asked" if self.rows == self.rows_requested else f"{self.rows_requested:,} asked"
        return (f"generated {self.rows:,} rows ({asked}) in {self.csv_files:,} CSV extracts and "
                f"{self.target_files} target workbooks ({self.start} .. {self.end}, "
                f"seed {self.seed}) in {self.seconds:.1f}s\n"
                f"  into {self.bucket_dir}\n"
                f"  dirty rows: {dirty}; stray BOM in {', '.join(self.bom_files)}")


def _lit_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _lead_base_sql(n_leads: int, start: date, ndays: int) -> str:
    end_excl = start + timedelta(days=ndays)
    return f"""
    CREATE TABLE lead_base AS
    WITH b AS (
      SELECT i,
        -- the first leads fill one day each: every day has leads (an empty leads extract is a
        -- failed delivery to the trusted flow), the rest fall on random days
        CAST(DATE '{start.isoformat()}' + CAST(CASE WHEN i < {ndays} THEN i
                                                   ELSE floor(u(i, 'd') * {ndays}) END AS INTEGER) AS TIMESTAMP)
          + to_seconds(CAST(21600 + floor(u(i, 's') * 50400) AS BIGINT)) AS created_at,
        CAST(floor(u(i, 'c') * {len(CHANNELS)}) AS INTEGER) AS ch,
        CAST(floor(u(i, 'g') * {len(SEGMENTS)}) AS INTEGER) AS sg,
        CAST(floor(u(i, 'y') * {len(CITIES)}) AS INTEGER) AS ct,
        CAST(floor(u(i, 'r') * {len(REPS)}) AS INTEGER) AS rp
      FROM range({n_leads}) t(i)
    ), f AS (
      SELECT *,
        u(i, 'q') < 0.45 + 0.05 * ch AS q,
        created_at + to_seconds(CAST(3600 + floor(u(i, 'qd') * 864000) AS BIGINT)) AS qualified_at,
        u(i, 'o') < 0.45 + 0.05 * sg AS o0,
        u(i, 'w') < 0.4 AS w0, u(i, 'l') < 0.6 AS l0,
        round({list(SEGMENT_BASE_COP)}[sg + 1]
              * (0.5 + 1.5 * u(i, 'a')), -3) AS est_amount
      FROM b
    ), g AS (
      SELECT *, q AND o0 AS o,
        qualified_at + to_seconds(CAST(86400 + floor(u(i, 'od') * 1728000) AS BIGINT)) AS opp_at,
        round(est_amount * (0.7 + 0.5 * u(i, 'oa')), -3) AS opp_amount
      FROM f
    )
    SELECT *, o AND w0 AS w, o AND NOT w0 AND l0 AS lost,
      opp_at + to_seconds(CAST(432000 + floor(u(i, 'wd') * 3456000) AS BIGINT)) AS won_at,
      round(opp_amount * (0.85 + 0.15 * u(i, 'wa')), -3) AS won_amount,
      TIMESTAMP '{end_excl.isoformat()} 00:00:00' AS end_ts
    FROM g
    """


def _ts(col: str) -> str:
    return f"strftime({col}, '%Y-%m-%d %H:%M:%S')"


def _amount(col: str) -> str:
    return f"CAST(CAST({col} AS BIGINT) AS VARCHAR)"


def _clean_sql(entity: str, base: str = "lead_base") -> str:
    """SELECT src (unique per row), ts, then the entity's columns as strings, from the leads in `base`."""
    rep = f"{_lit_list(REPS)}[rp + 1]"
    if entity == "leads":
        company = (f"{_lit_list(COMPANY_A)}[1 + CAST(floor(u(i, 'ca') * {len(COMPANY_A)}) AS INTEGER)] || ' ' || "
                   f"{_lit_list(COMPANY_B)}[1 + CAST(floor(u(i, 'cb') * {len(COMPANY_B)}) AS INTEGER)] || ' ' || "
                   f"{_lit_list(COMPANY_C)}[1 + CAST(floor(u(i, 'cc') * {len(COMPANY_C)}) AS INTEGER)]")
        return (f"SELECT i AS src, created_at AS ts, printf('L%09d', i + 1), {_ts('created_at')}, "
                f"{_lit_list(CHANNELS)}[ch + 1], {_lit_list(SEGMENTS)}[sg + 1], {_lit_list(REGIONS)}[ct + 1], "
                f"{_lit_list(CITIES)}[ct + 1], {rep}, {company}, {_amount('est_amount')} FROM {base}")
    if entity == "stage_changes":
        parts = []
        for k, (stage, flag, col) in enumerate([("Calificado", "q", "qualified_at"), ("Oportunidad", "o", "opp_at"),
                                                ("Ganado", "w", "won_at"), ("Perdido", "lost", "won_at")]):
            parts.append(f"SELECT i * 4 + {k} AS src, {col} AS ts, printf('C%010d', i * 4 + {k} + 1), "
                         f"printf('L%09d', i + 1), '{stage}', {_ts(col)}, {rep} FROM {base} "
                         f"WHERE {flag} AND {col} < end_ts")
        return " UNION ALL ".join(parts)
    if entity == "opportunities":
        product = f"{_lit_list(PRODUCTS)}[1 + CAST(floor(u(i, 'p') * {len(PRODUCTS)}) AS INTEGER)]"
        return (f"SELECT i AS src, opp_at AS ts, printf('O%09d', i + 1), printf('L%09d', i + 1), "
                f"{_ts('opp_at')}, {product}, {_amount('opp_amount')}, {rep} FROM {base} WHERE o AND opp_at < end_ts")
    return (f"SELECT i AS src, won_at AS ts, printf('N%09d', i + 1), printf('O%09d', i + 1), printf('L%09d', i + 1), "
            f"{_ts('won_at')}, {_amount('won_amount')}, {rep} FROM {base} WHERE w AND won_at < end_ts")


def _clean_source(ent: Entity, base: str = "lead_base") -> str:
    """The entity's clean rows over the leads in `base`, as a subquery `_lines_sql` reads."""
    cols = ", ".join(f"c{j}" for j in range(len(ent.header)))
    return f"(SELECT CAST(ts AS DATE) AS file_day, * FROM ({_clean_sql(ent.name, base)}) t(src, ts, {cols}))"


def _lines_sql(ent: Entity, source: str = "clean") -> str:
    """Clean rows plus their dirty companions, each as one CSV line with its day, order and lead."""
    cols = [f"c{j}" for j in range(len(ent.header))]
    kinds = ["duplicate", "malformed_date", "missing_id", "too_many_columns"]
    if ent.amount_col:
        kinds += ["negative_amount", "non_numeric_amount"]
    if ent.stage_col:
        kinds += ["unknown_stage"]
    idx = {h: f"c{j}" for j, h in enumerate(ent.header)}
    new_id = f"printf('{ent.id_format}', 900000000 + src)"
    selects, lo = [], 0.0
    line = lambda vals: " || ',' || ".join(f"coalesce({v}, '')" for v in vals)  # noqa: E731
    lead = "src // 4" if ent.name == "stage_changes" else "src"  # stage changes: four ids per lead
    selects.append(f"SELECT file_day, src * 8 AS ord, 'clean' AS kind, {line(cols)} AS line, {lead} AS lead FROM {source}")
    for n, kind in enumerate(kinds, start=1):
        hi = lo + DIRTY_RATES[kind]
        vals = list(cols)
        if kind != "duplicate":
            vals[ent.header.index(ent.id_col)] = new_id
        a = idx.get(ent.amount_col or "", "")
        if kind == "malformed_date":
            vals[ent.header.index(ent.date_col)] = (
                f"CASE hash(src, 'mv') % 4 WHEN 0 THEN strftime(ts, '%d/%m/%Y %H:%M:%S') "
                f"WHEN 1 THEN strftime(ts, '%Y-02-30 %H:%M:%S') WHEN 2 THEN '' "
                f"ELSE strftime(ts, '%Y') || '-13-45 25:61:00' END")
        elif kind == "missing_id":
            vals[ent.header.index("ID_LEAD" if ent.name == "stage_changes" else ent.id_col)] = "''"
        elif kind == "negative_amount":
            vals[ent.header.index(ent.amount_col)] = f"'-' || {a}"
        elif kind == "non_numeric_amount":
            vals[ent.header.index(ent.amount_col)] = (
                f"CASE hash(src, 'nv') % 3 WHEN 0 THEN 'N/A' WHEN 1 THEN 'sin dato' "
                f"ELSE '$ ' || replace(format('{{:,}}', CAST({a} AS BIGINT)), ',', '.') END")
        elif kind == "unknown_stage":
            vals[ent.header.index(ent.stage_col)] = (
                "CASE hash(src, 'sv') % 3 WHEN 0 THEN 'En revisión' WHEN 1 THEN 'Reactivado' "
                "ELSE 'PENDIENTE_APROBACIÓN' END")
        text = line(vals) + (" || ',OBSERVACIÓN PENDIENTE'" if kind == "too_many_columns" else "")
        selects.append(f"SELECT file_day, src * 8 + {n}, '{kind}', {text}, {lead} FROM {source} "
                       f"WHERE u(src, 'dirty:{ent.name}') >= {lo} AND u(src, 'dirty:{ent.name}') < {hi}")
        lo = hi
    return " UNION ALL ".join(selects)


def _write_days(con, raw_root: Path, ent: Entity, days: list[date], wrote: Callable[[int], None]) -> int:
    """One file per day in the extract layout, rows in order (each day has at least its header);
    `wrote(rows)` hears of each file as it lands (the CLI's progress).

    DuckDB's partitioned COPY does not keep row order inside a partition (measured), so each
    day's text is assembled with an ordered string_agg, a month at a time to bound memory.
    """
    n = 0
    months = sorted({d.replace(day=1) for d in days})
    for m in months:
        nxt = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
        for day, text, rows in con.execute(
                "SELECT file_day, string_agg(line, chr(10) ORDER BY ord), count(*) FILTER (WHERE kind <> 'header') "
                "FROM lines WHERE file_day >= ? AND file_day < ? GROUP BY file_day", [m, nxt]).fetchall():
            dest = (raw_root / "FUNNEL" / "TERADATA" / ent.name / f"{day:%Y}" / f"{day:%m}"
                    / f"{ent.name}_{day:%Y%m%d}.csv")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(text.encode("utf-8") + b"\n")
            n += 1
            wrote(rows)
    return n


# the folders the generator owns in the raw bucket; funnelops replaces each whole, by rename
TREES = (("FUNNEL", "TERADATA"), ("FUNNEL", "EXCEL", "metas"))


def _exact_leads(con, rows: int, start: date, ndays: int) -> dict[str, list[int]]:
    """Make `lead_base` hold just enough leads for exactly `rows` CSV lines; returns, per entity,
    the lines (their `ord`) of the last lead to leave out so the total is exact.

    Each lead brings a varying number of lines (its stage changes, opportunity, deal, dirty
    copies; later events fall past `end`), so `rows / ROWS_PER_LEAD` leads only come close (it
    wrote 987,260 of 1,000,000). A lead's lines depend on its index alone, so the running total
    over leads is exact: keep leads up to the first whose total reaches `rows`, then drop the
    overshoot from that lead: its dirty copies first, then its latest events (a deal before its
    opportunity before its stage changes), never its lead row, so no kept line names a missing one.
    """
    guess = max(1, round(rows / ROWS_PER_LEAD))
    while True:
        guess = int(guess * 1.1) + 16
        con.execute("DROP TABLE IF EXISTS lead_base")
        con.execute(_lead_base_sql(guess, start, ndays))
        per_lead = " UNION ALL ".join(f"SELECT lead FROM ({_lines_sql(ent, _clean_source(ent))})" for ent in ENTITIES)
        found = con.execute(
            f"SELECT lead, total FROM (SELECT lead, sum(n) OVER (ORDER BY lead) AS total FROM "
            f"(SELECT lead, count(*) AS n FROM ({per_lead}) GROUP BY lead)) WHERE total >= ? ORDER BY lead LIMIT 1",
            [rows]).fetchone()
        if found is not None:
            break
        guess *= 2
    last, total = int(found[0]), int(found[1])
    con.execute(f"DELETE FROM lead_base WHERE i > {last}")
    one = f"(SELECT * FROM lead_base WHERE i = {last})"
    mine = [(ent.name, rank, ord_, kind) for rank, ent in enumerate(reversed(ENTITIES))
            for ord_, kind in con.execute(f"SELECT ord, kind FROM ({_lines_sql(ent, _clean_source(ent, one))})").fetchall()]
    mine.sort(key=lambda r: (r[3] == "clean", r[1], -r[2]))  # dirty copies, then deals .. stage changes
    drop: dict[str, list[int]] = {}
    for name, _, ord_, _ in mine[:total - rows]:
        drop.setdefault(name, []).append(ord_)
    return drop


def generate(raw_root: Path, rows: int, start: date, end: date, seed: int,
             progress: Callable[..., None] | None = None) -> GenerateReport:
    """Write exactly `rows` raw rows (all CSV entities together) for days `start`..`end` inclusive
    under `raw_root` (funnelops passes a scratch folder laid out like the raw bucket); returns the
    report. `progress(done, total, unit, detail)`, when given, hears of the rows written so far
    after each file (optional: funnelops passes it only to a generator that takes it)."""
    import duckdb

    t0 = time.perf_counter()
    ndays = (end - start).days + 1
    days = [start + timedelta(days=k) for k in range(ndays)]
    report = GenerateReport(bucket_dir=str(raw_root), start=start.isoformat(), end=end.isoformat(), seed=seed,
                            rows_requested=rows)
    written = [0, 0]

    def wrote(n: int) -> None:
        written[0] += n
        written[1] += 1
        if progress is not None:
            progress(written[0], rows, "rows", f"{written[1]:,} file{'s' if written[1] != 1 else ''}")

    con = duckdb.connect()
    try:
        con.execute(f"CREATE MACRO u(i, k) AS ((hash(i, {seed}, k) % 1000003) / 1000003.0)")
        drop = _exact_leads(con, rows, start, ndays)
        for ent in ENTITIES:
            cols = ", ".join(f"c{j}" for j in range(len(ent.header)))
            con.execute(f"CREATE OR REPLACE TABLE clean AS SELECT CAST(ts AS DATE) AS file_day, * "
                        f"FROM ({_clean_sql(ent.name)}) t(src, ts, {cols})")
            header = ",".join(ent.header).replace("'", "''")
            left_out = drop.get(ent.name)
            keep = f"ord NOT IN ({', '.join(map(str, left_out))})" if left_out else "TRUE"
            con.execute(f"CREATE OR REPLACE TABLE lines AS SELECT * FROM ({_lines_sql(ent)}) WHERE {keep} "
                        f"UNION ALL SELECT DATE '{start}' + CAST(k AS INTEGER), -1, 'header', '{header}', -1 "
                        f"FROM range({ndays}) t(k)")
            counts = dict(con.execute("SELECT kind, count(*) FROM lines WHERE kind <> 'header' GROUP BY kind").fetchall())
            report.rows_by_entity[ent.name] = sum(counts.values())
            report.dirty_by_entity[ent.name] = {k: v for k, v in sorted(counts.items()) if k != "clean"}
            report.csv_files += _write_days(con, raw_root, ent, days, wrote)
        targets = con.execute(f"""
            WITH months AS (SELECT DISTINCT date_trunc('month', DATE '{start}' + CAST(k AS INTEGER)) AS m
                            FROM range({ndays}) t(k)),
            won AS (SELECT date_trunc('month', won_at) AS m, ch, sg, count(*) AS n, sum(won_amount) AS amt
                    FROM lead_base WHERE w AND won_at < end_ts GROUP BY ALL)
            SELECT strftime(months.m, '%Y-%m'), c.ch, s.sg,
                   greatest(1, round(coalesce(n, 1) * (0.8 + 0.4 * u(c.ch * 10 + s.sg, strftime(months.m, '%Y%m'))))),
                   round(coalesce(amt, 50000000) * (0.8 + 0.4 * u(c.ch * 10 + s.sg, 'a' || strftime(months.m, '%Y%m'))), -6)
            FROM months, range({len(CHANNELS)}) c(ch), range({len(SEGMENTS)}) s(sg)
            LEFT JOIN won ON won.m = months.m AND won.ch = c.ch AND won.sg = s.sg
            ORDER BY 1, 2, 3""").fetchall()
    finally:
        con.close()
    _write_targets(raw_root, targets, report)
    first = raw_root / "FUNNEL" / "TERADATA" / "leads" / f"{start:%Y}" / f"{start:%m}" / f"leads_{start:%Y%m%d}.csv"
    data = first.read_bytes()
    first.write_bytes(b"\xef\xbb\xbf" + data)  # a stray BOM, as some Windows exports carry
    report.bom_files.append(str(first.relative_to(raw_root)))
    report.rows = sum(report.rows_by_entity.values())
    totals: dict[str, int] = {}
    for kinds in report.dirty_by_entity.values():
        for k, v in kinds.items():
            totals[k] = totals.get(k, 0) + v
    report.dirty = dict(sorted(totals.items()))
    report.seconds = round(time.perf_counter() - t0, 3)
    return report


MONTHS_ES = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre",
             "octubre", "noviembre", "diciembre"]


def _write_targets(raw_root: Path, targets: list[tuple], report: GenerateReport) -> None:
    """One workbook per month: a title row, a blank row, the header, then one row per channel and segment."""
    from openpyxl import Workbook

    by_month: dict[str, list[tuple]] = {}
    for row in targets:
        by_month.setdefault(row[0], []).append(row)
    missing = 0
    for k, (month, rows) in enumerate(sorted(by_month.items())):
        wb = Workbook()
        ws = wb.active
        ws.title = "Metas"
        wb.properties.created = wb.properties.modified = datetime(2000, 1, 1)  # stable content
        year, mm = month.split("-")
        ws.append([f"Metas comerciales de {MONTHS_ES[int(mm) - 1]} de {year}"])
        ws.append([])
        ws.append(list(TARGET_HEADER))
        for j, (_, ch, sg, count, amount) in enumerate(rows):
            blank = k % 3 == 0 and j == 0  # every third month one target is left empty
            missing += blank
            ws.append([month, CHANNELS[ch], SEGMENTS[sg], int(count), None if blank else int(amount)])
        dest = raw_root / "FUNNEL" / "EXCEL" / "metas" / year / f"metas_{year}{mm}.xlsx"
        dest.parent.mkdir(parents=True, exist_ok=True)
        wb.save(dest)
        report.target_files += 1
        report.target_rows += len(rows)
    report.dirty_by_entity["targets"] = {"missing_target": missing} if missing else {}
