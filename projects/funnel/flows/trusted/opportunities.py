"""Opportunities: qualified leads with a product and an amount in COP."""

from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "FUNNEL/TERADATA/opportunities/{yyyy}/{mm}/opportunities_{yyyymmdd}.csv"
COLUMNS = ("ID_OPORTUNIDAD", "ID_LEAD", "FECHA_APERTURA", "PRODUCTO", "MONTO_COP", "ASESOR")
TARGET = "opportunities"
PARTITION = "event_date"
OUTPUT = ("opportunity_id", "lead_id", "opened_at", "product", "amount_cop", "sales_rep", "event_date")
ALLOW_EMPTY = True   # a quiet day opens no opportunity: its header-only extract empties the day


def transform(raw):
    typed = raw.select(
        dq.text("ID_OPORTUNIDAD").alias("opportunity_id"),
        dq.text("ID_LEAD").alias("lead_id"),
        dq.timestamp("FECHA_APERTURA").alias("opened_at"),
        dq.text("PRODUCTO").alias("product"),
        dq.amount("MONTO_COP").alias("amount_cop"),
        dq.text("ASESOR").alias("sales_rep"),
        F.to_date(dq.timestamp("FECHA_APERTURA")).alias("event_date"),
        *dq.lineage(COLUMNS),
    )
    checked = typed.withColumn("dq_rule", dq.first_failing([
        ("id_not_null", F.col("opportunity_id").isNull() | F.col("lead_id").isNull()),
        ("parsable_date", F.col("opened_at").isNull()),
        ("amount_numeric", F.col("amount_cop").isNull()),
        ("amount_non_negative", F.col("amount_cop") < F.lit(0)),
    ]))
    return dq.finish(dq.deduplicate(checked, "opportunity_id"), OUTPUT)
