"""Leads: the sales system's daily extract -> typed, deduplicated leads, one partition per day.

Runs unchanged on SQLFrame/DuckDB and on Spark: PySpark DataFrame API only, every column aliased.
"""

from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "FUNNEL/TERADATA/leads/{yyyy}/{mm}/leads_{yyyymmdd}.csv"
COLUMNS = ("ID_LEAD", "FECHA_CREACION", "CANAL", "SEGMENTO", "REGION", "CIUDAD", "ASESOR", "EMPRESA",
           "MONTO_ESTIMADO_COP")
TARGET = "leads"
PARTITION = "event_date"
OUTPUT = ("lead_id", "created_at", "channel", "segment", "region", "city", "sales_rep", "company",
          "estimated_amount_cop", "event_date")


def transform(raw):
    typed = raw.select(
        dq.text("ID_LEAD").alias("lead_id"),
        dq.timestamp("FECHA_CREACION").alias("created_at"),
        dq.text("CANAL").alias("channel"),
        dq.text("SEGMENTO").alias("segment"),
        dq.text("REGION").alias("region"),
        dq.text("CIUDAD").alias("city"),
        dq.text("ASESOR").alias("sales_rep"),
        dq.text("EMPRESA").alias("company"),
        dq.amount("MONTO_ESTIMADO_COP").alias("estimated_amount_cop"),
        F.to_date(dq.timestamp("FECHA_CREACION")).alias("event_date"),
        *dq.lineage(COLUMNS),
    )
    checked = typed.withColumn("dq_rule", dq.first_failing([
        ("id_not_null", F.col("lead_id").isNull()),
        ("parsable_date", F.col("created_at").isNull()),
        ("amount_numeric", F.col("estimated_amount_cop").isNull()),
        ("amount_non_negative", F.col("estimated_amount_cop") < F.lit(0)),
    ]))
    return dq.finish(dq.deduplicate(checked, "lead_id"), OUTPUT)
