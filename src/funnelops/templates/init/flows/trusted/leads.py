"""Leads: the CRM's lead export (one row per lead) -> typed, checked leads, one partition per day.

The contract of a trusted flow (docs/flows.md): module constants saying where the raw file is and
what it holds, and `transform(raw)`, written with the PySpark DataFrame API (it runs on DuckDB
locally and on Spark in Dataproc). `raw` is a DataFrame of strings, one column per COLUMNS name.
"""

from funnelops.flows import dq
from funnelops.flows.engine import F

# Where the file is in the raw bucket. A plain path is a snapshot: the whole history in one file,
# read on every run and filtered to the run's period by DATE_COLUMN. Put it there with
#   funnelops data load path/to/leads.csv --flow leads
# A dated layout (one file per day) would read "crm/leads/{yyyy}/{mm}/leads_{yyyymmdd}.csv".
FILES = "crm/leads.csv"
DATE_COLUMN = "created_date"           # the raw column that dates a row (ISO dates: 2024-03-31)
# DATE_FORMATS = ("%d/%m/%Y",)         # other date formats DATE_COLUMN may use
# CSV = {"delimiter": ";", "quote": '"', "encoding": "utf-8", "header": True}

# The header the file must carry (any order; a missing or unknown column fails the run).
COLUMNS = ("lead_id", "created_date", "source")

TARGET = "leads"                       # the trusted table (a folder in the trusted bucket)
PARTITION = "created_date"             # its DATE partition column, one of OUTPUT
OUTPUT = ("lead_id", "created_date", "source")


def transform(raw):
    # Type every column; a value that does not parse becomes NULL (never an error).
    typed = raw.select(
        dq.text("lead_id").alias("lead_id"),
        dq.date("created_date").alias("created_date"),
        dq.text("source").alias("source"),
        *dq.lineage(COLUMNS),           # file and line of every row, for the quarantine
    )
    # A row failing a rule is quarantined (with the rule's name, file and line), never dropped.
    checked = typed.withColumn("dq_rule", dq.first_failing([
        ("id_not_null", F.col("lead_id").isNull()),
        ("parsable_date", F.col("created_date").isNull()),
    ]))
    # The first row of a lead_id wins; later ones are quarantined as `duplicate`.
    return dq.finish(dq.deduplicate(checked, "lead_id"), OUTPUT)
