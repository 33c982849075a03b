"""Monthly targets: the commercial team's Excel workbook -> one row per month, channel and segment.

A workbook arrives once a month, so a DAY or MONTH run reads the month's workbook and replaces
that month's partition (`event_date` = first day of the month).
"""

from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "FUNNEL/EXCEL/metas/{yyyy}/metas_{yyyymm}.xlsx"
COLUMNS = ("MES", "CANAL", "SEGMENTO", "META_NEGOCIOS", "META_MONTO_COP")
TARGET = "targets"
PARTITION = "event_date"
OUTPUT = ("month", "channel", "segment", "target_won_count", "target_amount_cop", "event_date")


def transform(raw):
    typed = raw.select(
        dq.month_start("MES").alias("month"),
        dq.text("CANAL").alias("channel"),
        dq.text("SEGMENTO").alias("segment"),
        dq.count("META_NEGOCIOS").alias("target_won_count"),
        dq.amount("META_MONTO_COP").alias("target_amount_cop"),
        dq.text("META_NEGOCIOS").alias("_count_text"),
        dq.text("META_MONTO_COP").alias("_amount_text"),
        dq.month_start("MES").alias("event_date"),
        *dq.lineage(COLUMNS),
    )
    key = F.concat_ws("|", F.col("month").cast("string"), F.col("channel"), F.col("segment"))
    checked = typed.withColumns({"_key": key, "dq_rule": dq.first_failing([
        ("id_not_null", F.col("channel").isNull() | F.col("segment").isNull()),
        ("parsable_date", F.col("month").isNull()),
        ("target_present", F.col("_count_text").isNull() | F.col("_amount_text").isNull()),
        ("amount_numeric", F.col("target_won_count").isNull() | F.col("target_amount_cop").isNull()),
        ("amount_non_negative", F.col("target_amount_cop") < F.lit(0)),
    ])})
    # the key is the month, channel and segment together: a second row for them is a duplicate
    return dq.finish(dq.deduplicate(checked, "_key"), OUTPUT)
