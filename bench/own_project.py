"""bench/own_project.py: the README's "Your own project" walkthrough, timed on a 100k-row leads file.

    .venv/bin/python bench/own_project.py [--leads 100000] [--dir DIR] [--seed 7]

A marketing-funnel dataset as a team would export it -- two plain CSV files: leads (one row per
lead with its `first_contact_date`, the whole history in one file: a snapshot) and closed deals
(one row per deal with its `won_date`, loaded into a dated daily layout) -- goes through the
walkthrough's commands, each a `funnelops` subprocess (start-up included): init, validate,
IaC, data load (twice), "Initial data", and the monthly scheduler forced for one past month.
Prints the seconds of each command; the last line is one JSON object {"leads", "deals",
"commands": {name: seconds}, "total_s"}.

The dataset and the project edits are shared with tests/e2e/test_own_project.py, which checks
the refined figures against its own computation.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
START, END = date(2024, 1, 1), date(2024, 6, 30)
SOURCES = ("web", "referral", "event", "ads")
FORCED_PERIOD = "2024-03"


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


def write_dataset(folder: Path, leads: int, seed: int = 7) -> tuple[Path, Path]:
    """leads.csv and deals.csv with a few dirty rows of the kinds exports carry: a blank id, a
    re-delivered lead (an exact duplicate line), an impossible date, an amount `N/A`. Every day
    of [START, END] has at least one won deal, so the daily layout has no gap."""
    rng = random.Random(seed)
    days = _days(START, END)
    lead_rows: list[list[str]] = []
    for i in range(leads):
        created = rng.choice(days)
        row = [f"L{i:07d}", created.isoformat(), rng.choice(SOURCES)]
        if i % 97 == 5:
            row[0] = ""                                  # blank id: quarantined as id_not_null
        elif i % 101 == 7:
            row[1] = f"{created:%Y-%m}-31" if created.month in (2, 4, 6) else "2024-02-30"  # impossible date
        lead_rows.append(row)
        if i % 89 == 3:
            lead_rows.append(list(row))                  # re-delivered: quarantined as duplicate
    good = [(r[0], date.fromisoformat(r[1])) for r in lead_rows if r[0] and _iso(r[1])]
    deal_rows: list[list[str]] = []

    def deal(lead_id: str, won: date) -> None:
        k = len(deal_rows)
        amount = "N/A" if k % 53 == 11 else f"{rng.randint(100, 99999)}.{rng.randint(0, 99):02d}"
        deal_rows.append([f"D{k:07d}", lead_id, won.isoformat(), amount])

    for lead_id, created in good:
        if rng.random() < 0.3:
            won = created + timedelta(days=rng.randint(0, 45))
            if won <= END:
                deal(lead_id, won)
    covered = {r[2] for r in deal_rows}
    for d in days:
        if d.isoformat() not in covered:
            deal(good[0][0], d)
    rng.shuffle(deal_rows)                               # an export is in no particular order
    folder.mkdir(parents=True, exist_ok=True)
    leads_csv, deals_csv = folder / "leads.csv", folder / "deals.csv"
    _write_csv(leads_csv, ["lead_id", "first_contact_date", "source"], lead_rows)
    _write_csv(deals_csv, ["deal_id", "lead_id", "won_date", "amount"], deal_rows)
    return leads_csv, deals_csv


def _iso(text: str) -> bool:
    try:
        date.fromisoformat(text)
        return True
    except ValueError:
        return False


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


DEALS_FLOW = '''"""Deals: the CRM's closed deals, one row per deal, delivered as one file per day."""

from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "crm/deals/{yyyy}/{mm}/deals_{yyyymmdd}.csv"
COLUMNS = ("deal_id", "lead_id", "won_date", "amount")
TARGET = "deals"
PARTITION = "won_date"
OUTPUT = ("deal_id", "lead_id", "won_date", "amount")
ALLOW_EMPTY = True


def transform(raw):
    typed = raw.select(
        dq.text("deal_id").alias("deal_id"),
        dq.text("lead_id").alias("lead_id"),
        dq.date("won_date").alias("won_date"),
        dq.decimal("amount", scale=2).alias("amount"),
        *dq.lineage(COLUMNS),
    )
    checked = typed.withColumn("dq_rule", dq.first_failing([
        dq.rule("id_not_null", F.col("deal_id").isNull() | F.col("lead_id").isNull()),
        dq.rule("parsable_date", F.col("won_date").isNull()),
        dq.rule("amount_numeric", F.col("amount").isNull()),
    ]))
    return dq.finish(dq.deduplicate(checked, "deal_id"), OUTPUT)
'''

FUNNEL_SQL = '''-- target: {ident}_refined.funnel_monthly
-- replace: period
-- granularities: MONTH
-- Leads by first contact and won deals by won date, per month.
WITH leads AS (
  SELECT DATE_TRUNC(first_contact_date, MONTH) AS period_start, COUNT(*) AS leads
  FROM {ident}_trusted.leads
  WHERE first_contact_date >= @period_start AND first_contact_date < @period_end
  GROUP BY period_start
),
won AS (
  SELECT DATE_TRUNC(won_date, MONTH) AS period_start, COUNT(*) AS won_deals, SUM(amount) AS won_amount
  FROM {ident}_trusted.deals
  WHERE won_date >= @period_start AND won_date < @period_end
  GROUP BY period_start
)
SELECT
  COALESCE(l.period_start, w.period_start) AS period_start,
  @granularity AS granularity,
  COALESCE(l.leads, 0) AS leads,
  COALESCE(w.won_deals, 0) AS won_deals,
  COALESCE(w.won_amount, 0) AS won_amount,
  CURRENT_TIMESTAMP() AS loaded_at
FROM leads AS l
FULL OUTER JOIN won AS w ON w.period_start = l.period_start
'''

FUNNEL_TABLE = '''  - dataset: {ident}_refined
    name: funnel_monthly
    description: Leads and won deals per month.
    partitioning: {{field: period_start, type: MONTH}}
    schema:
      - {{name: period_start, type: DATE, mode: REQUIRED}}
      - {{name: granularity, type: STRING, mode: REQUIRED}}
      - {{name: leads, type: INTEGER}}
      - {{name: won_deals, type: INTEGER}}
      - {{name: won_amount, type: NUMERIC}}
      - {{name: loaded_at, type: TIMESTAMP}}

'''


def customize(project_dir: Path, ident: str, slug: str) -> None:
    """What a team edits after `init` for this dataset: the leads flow's date column is
    `first_contact_date`; a deals flow, its external table, a refined table and its SQL."""
    for rel in ("flows/trusted/leads.py", "sql/refined/leads_per_period.sql"):
        path = project_dir / rel
        path.write_text(path.read_text(encoding="utf-8").replace("created_date", "first_contact_date"),
                        encoding="utf-8")
    (project_dir / "flows" / "trusted" / "deals.py").write_text(DEALS_FLOW, encoding="utf-8")
    (project_dir / "sql" / "refined" / "funnel_monthly.sql").write_text(FUNNEL_SQL.format(ident=ident),
                                                                        encoding="utf-8")
    spec = project_dir / "funnel.yaml"
    text = spec.read_text(encoding="utf-8")
    leads_ext = f"  - {{dataset: {ident}_trusted, name: leads, bucket: {slug}-trusted, prefix: leads/}}\n"
    deals_ext = f"  - {{dataset: {ident}_trusted, name: deals, bucket: {slug}-trusted, prefix: deals/}}\n"
    anchor = "# One workflow per granularity."
    assert leads_ext in text and anchor in text, "the init template changed: update bench/own_project.py"
    text = text.replace(leads_ext, leads_ext + deals_ext)
    text = text.replace(anchor, FUNNEL_TABLE.format(ident=ident) + anchor)
    spec.write_text(text, encoding="utf-8")


def walkthrough_commands(leads_csv: Path, deals_csv: Path) -> list[tuple[str, list[str]]]:
    """The README walkthrough after `init` and the edits, as (name, argv) pairs."""
    return [
        ("validate", ["validate"]),
        ("pipeline IaC", ["pipeline", "funnel", "--data-stage", "IaC"]),     # creates the raw bucket data load fills
        ("data load leads", ["data", "load", str(leads_csv), "--flow", "leads"]),
        ("data load deals", ["data", "load", str(deals_csv), "--flow", "deals", "--date-column", "won_date"]),
        ("pipeline Initial data", ["pipeline", "funnel", "--data-stage", "Initial data"]),
        ("force monthly", ["pipeline", "workflow", "--scheduler", "monthly", "--period", FORCED_PERIOD, "--wait"]),
    ]


def _run(env: dict[str, str], argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([FUNNELOPS, *argv], env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    took = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"funnelops {' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=None, help="work folder (default: a temporary one)")
    opts = ap.parse_args()
    base = (opts.dir or Path(tempfile.mkdtemp(prefix="own-project-"))).absolute()
    leads_csv, deals_csv = write_dataset(base / "exports", opts.leads, opts.seed)
    deals = sum(1 for _ in deals_csv.open()) - 1
    env = dict(os.environ, NO_COLOR="1")
    timings: dict[str, float] = {}
    timings["init"] = _run(env, ["init", str(base / "mkt"), "--name", "mkt funnel"], base)
    customize(base / "mkt", "mkt_funnel", "mkt-funnel")
    for name, argv in walkthrough_commands(leads_csv, deals_csv):
        timings[name] = _run(env, argv, base / "mkt")
    total = sum(timings.values())
    print(f"{opts.leads:,} leads, {deals:,} deals in {base}")
    for name, secs in timings.items():
        print(f"  {name:<24} {secs:7.2f} s")
    print(f"  {'total':<24} {total:7.2f} s")
    print(json.dumps({"leads": opts.leads, "deals": deals, "commands": {k: round(v, 2) for k, v in timings.items()},
                      "total_s": round(total, 2)}))


if __name__ == "__main__":
    main()
