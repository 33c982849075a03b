"""Stage changes: when a lead moved through the funnel (qualified, opportunity, won, lost).

The sales system writes stage names in Spanish and not always in the same case; the trusted layer
speaks English. A stage outside the funnel is quarantined rather than guessed.
"""

from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "FUNNEL/TERADATA/stage_changes/{yyyy}/{mm}/stage_changes_{yyyymmdd}.csv"
COLUMNS = ("ID_CAMBIO", "ID_LEAD", "ETAPA", "FECHA_CAMBIO", "ASESOR")
TARGET = "stage_changes"
PARTITION = "event_date"
OUTPUT = ("change_id", "lead_id", "stage", "changed_at", "sales_rep", "event_date")
ALLOW_EMPTY = True   # a quiet day moves no lead: its header-only extract empties the day
STAGES = {"calificado": "qualified", "oportunidad": "opportunity", "ganado": "won", "perdido": "lost"}


def stage(col_name: str):
    """Spanish stage name (any case, padded) -> the English funnel stage; unknown -> NULL."""
    key = F.lower(F.trim(F.col(col_name)))
    out = None
    for spanish, english in STAGES.items():
        out = (F.when(key == F.lit(spanish), F.lit(english)) if out is None
               else out.when(key == F.lit(spanish), F.lit(english)))
    return out


def transform(raw):
    typed = raw.select(
        dq.text("ID_CAMBIO").alias("change_id"),
        dq.text("ID_LEAD").alias("lead_id"),
        stage("ETAPA").alias("stage"),
        dq.timestamp("FECHA_CAMBIO").alias("changed_at"),
        dq.text("ASESOR").alias("sales_rep"),
        F.to_date(dq.timestamp("FECHA_CAMBIO")).alias("event_date"),
        *dq.lineage(COLUMNS),
    )
    checked = typed.withColumn("dq_rule", dq.first_failing([
        ("id_not_null", F.col("change_id").isNull() | F.col("lead_id").isNull()),
        ("parsable_date", F.col("changed_at").isNull()),
        ("known_stage", F.col("stage").isNull()),
    ]))
    return dq.finish(dq.deduplicate(checked, "change_id"), OUTPUT)
