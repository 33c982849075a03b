"""Running refined flows (trusted -> refined) on BigQuery: the gcp path.

The refined SQL files are BigQuery SQL already; here they run as written, reading the trusted
external tables (`funnel_trusted.leads`...) that the gcp backend created over the trusted
bucket. Two changes only, both made on the parsed query (sqlglot), never by text replacement:
every `dataset.table` gets the project id (a Dataproc job's default project is not necessarily
the data's), and the header comments are dropped.

Each flow is ONE query job holding a multi-statement transaction, so a reader sees the old
period or the new one, never neither and never both, and a failure leaves the old rows:

    DECLARE inserted INT64 DEFAULT NULL;
    BEGIN TRANSACTION;
    DELETE FROM `p.d.t` WHERE period_start >= @period_start AND period_start < @period_end
                             AND granularity = @granularity;     -- `WHERE TRUE` for replace: all
    INSERT INTO `p.d.t` (cols...) <the flow's query>;
    SET inserted = @@row_count;
    COMMIT TRANSACTION;
    SELECT inserted AS inserted_rows;

The period travels as query parameters (`@granularity` STRING, `@period_start`/`@period_end`
DATE, half-open; a `full` run gets the whole calendar), never spliced into the text. The last
SELECT reports the rows inserted (the script's result), which become read = kept of the flow.
Endpoint and credentials come from the gcp backend's clients (FUNNELOPS_BIGQUERY_ENDPOINT with
anonymous credentials for the contract double; otherwise Application Default Credentials).
"""

from __future__ import annotations

import re
import time
from datetime import date

from funnelops.errors import BackendError
from funnelops.flows.context import FlowResult, RunContext
from funnelops.flows.raw import FlowSourceError
from funnelops.flows.registry import RefinedFlow, load_refined

PARAMS = {"granularity": "STRING", "period_start": "DATE", "period_end": "DATE"}


def run_refined(ctx: RunContext, names: list[str], clients=None) -> list[FlowResult]:
    if not names:
        return []
    own = clients is None
    if own:
        from funnelops.backends.gcp.clients import Clients

        p = ctx.loaded.spec.project
        clients = Clients(p.id, p.region)
    try:
        out = []
        for name in names:
            result = run_refined_flow(ctx, clients, load_refined(ctx.project_dir, name))
            print(result.line(), flush=True)
            out.append(result)
        return out
    finally:
        if own:
            clients.close()


def qualified_query(ctx: RunContext, flow: RefinedFlow, project: str) -> tuple[str, list[str]]:
    """The flow's query with project-qualified table names, and its output column names.

    Every table it reads must be an external table of the project (what the trusted layer
    publishes), as on the local path.
    """
    from sqlglot import exp

    from funnelops.spec.sql_safety import parse_query, problem_message
    from funnelops.spec.sqlrefs import SqlError, table_refs

    try:  # exactly one query: it is spliced into a transaction script below
        tree = parse_query(flow.sql, "bigquery")
        refs = table_refs(flow.sql)
    except SqlError as exc:
        raise FlowSourceError(f"refined flow {flow.name} ({flow.path}): {problem_message(exc)}",
                              "a refined SQL file is one SELECT; run `funnelops validate`") from None
    externals = {e.address for e in ctx.loaded.spec.external_tables}
    for ref in refs:
        if ref not in externals:
            raise FlowSourceError(f"refined flow {flow.name} reads {ref}, which is not an external table of "
                                  f"the project", "refined SQL reads the trusted external tables")
    for table in tree.find_all(exp.Table):
        if table.db:  # `dataset.table`; CTE names have no dataset
            table.set("catalog", exp.to_identifier(project))
    columns = list(tree.named_selects)
    if not columns or any(c in ("", "*") for c in columns):
        raise FlowSourceError(f"refined flow {flow.name}: every output column needs a name (alias it)")
    return tree.sql(dialect="bigquery", comments=False), columns


def _table_columns(ctx: RunContext, address: str) -> list[str] | None:
    cols = getattr(ctx.loaded, "table_schemas", {}).get(address)
    if cols is None:
        return None
    return [c if isinstance(c, str) else (c.get("name") if isinstance(c, dict) else getattr(c, "name", str(c)))
            for c in cols]


def build_script(ctx: RunContext, flow: RefinedFlow, project: str) -> tuple[str, str]:
    """(the transaction script, the fully qualified target `project.dataset.table`)."""
    dataset, table = flow.table_for(ctx.granularity)
    target = f"`{project}.{dataset}.{table}`"
    query, columns = qualified_query(ctx, flow, project)
    cols = _table_columns(ctx, f"{dataset}.{table}")
    unknown = [c for c in columns if cols is not None and c not in cols]
    if unknown:
        raise BackendError(f"refined flow {flow.name}: {dataset}.{table} has no column(s) {', '.join(unknown)}",
                           "alias the query's columns as the table's schema names them")
    if flow.replace == "period":
        if cols is not None and "period_start" not in cols:
            raise BackendError(f"refined flow {flow.name}: {dataset}.{table} has no period_start column to "
                               f"replace a period by", "use `-- replace: all` or add the column")
        where = "period_start >= @period_start AND period_start < @period_end"
        if cols is None or "granularity" in cols:
            where += " AND granularity = @granularity"
    else:
        where = "TRUE"  # BigQuery's DELETE needs a WHERE clause
    script = "\n".join([
        "DECLARE inserted INT64 DEFAULT NULL;",
        "BEGIN TRANSACTION;",
        f"DELETE FROM {target} WHERE {where};",
        f"INSERT INTO {target} ({', '.join(f'`{c}`' for c in columns)})\n{query};",
        "SET inserted = @@row_count;",
        "COMMIT TRANSACTION;",
        "SELECT inserted AS inserted_rows;",
    ])
    return script, f"{project}.{dataset}.{table}"


def query_parameters(ctx: RunContext, script: str) -> list:
    """The period as typed query parameters, only those the script uses."""
    from google.cloud import bigquery

    start, end = ctx.bounds()
    values = {"granularity": ctx.granularity, "period_start": date.fromisoformat(start),
              "period_end": date.fromisoformat(end)}
    return [bigquery.ScalarQueryParameter(name, PARAMS[name], values[name])
            for name in PARAMS if re.search(r"@" + name + r"\b", script)]


def run_refined_flow(ctx: RunContext, clients, flow: RefinedFlow) -> FlowResult:
    from google.cloud import bigquery

    if ctx.granularity not in flow.granularities:
        return FlowResult("refined", flow.name, skipped=f"runs for {', '.join(flow.granularities)} only")
    t0 = time.perf_counter()
    script, target = build_script(ctx, flow, clients.project)
    config = bigquery.QueryJobConfig(query_parameters=query_parameters(ctx, script), use_legacy_sql=False,
                                     labels={"funnelops-flow": re.sub(r"[^a-z0-9_-]", "-", flow.name.lower())})
    location = getattr(ctx.loaded.spec.project, "location", None)
    try:
        job = clients.bigquery.query(script, job_config=config, location=location,
                                     job_id_prefix=f"funnelops_refined_{flow.name}_")
        rows = list(job.result())
    except Exception as exc:  # google.api_core errors name the statement; keep the flow and table in front
        raise BackendError(f"refined flow {flow.name} into {target} failed: {exc}",
                           "check the query in the BigQuery console; nothing was replaced") from None
    inserted = int(rows[0][0]) if rows and rows[0][0] is not None else 0
    return FlowResult("refined", flow.name, read=inserted, kept=inserted, quarantined=0,
                      seconds=round(time.perf_counter() - t0, 3))
