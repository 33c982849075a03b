"""Won deals: closed opportunities with the amount actually won, in COP."""

from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "FUNNEL/TERADATA/won_deals/{yyyy}/{mm}/won_deals_{yyyymmdd}.csv"
COLUMNS = ("ID_NEGOCIO", "ID_OPORTUNIDAD", "ID_LEAD", "FECHA_CIERRE", "MONTO_COP", "ASESOR")
TARGET = "won_deals"
PARTITION = "event_date"
OUTPUT = ("deal_id", "opportunity_id", "lead_id", "won_at", "amount_cop", "sales_rep", "event_date")
ALLOW_EMPTY = True   # a day without a won deal is normal: its header-only extract empties the day


def transform(raw):
    typed = raw.select(
        dq.text("ID_NEGOCIO").alias("deal_id"),
        dq.text("ID_OPORTUNIDAD").alias("opportunity_id"),
        dq.text("ID_LEAD").alias("lead_id"),
        dq.timestamp("FECHA_CIERRE").alias("won_at"),
        dq.amount("MONTO_COP").alias("amount_cop"),
        dq.text("ASESOR").alias("sales_rep"),
        F.to_date(dq.timestamp("FECHA_CIERRE")).alias("event_date"),
        *dq.lineage(COLUMNS),
    )
    checked = typed.withColumn("dq_rule", dq.first_failing([
        ("id_not_null", F.col("deal_id").isNull() | F.col("lead_id").isNull()),
        ("parsable_date", F.col("won_at").isNull()),
        ("amount_numeric", F.col("amount_cop").isNull()),
        ("amount_non_negative", F.col("amount_cop") < F.lit(0)),
    ]))
    return dq.finish(dq.deduplicate(checked, "deal_id"), OUTPUT)
