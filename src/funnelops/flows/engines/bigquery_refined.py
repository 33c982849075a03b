"""A refined job as one BigQuery query job: the gcp path.

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

The period travels as query parameters, never spliced into the text. The last SELECT reports
the rows inserted (the script's result), which become read = kept of the flow. The BigQuery
client is injected by the backend's flows runtime (endpoint and credentials are its business).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any
from collections.abc import Callable, Iterator

from funnelops.errors import BackendError
from funnelops.flows.context import RunContext
from funnelops.flows.engines.base import Verify
from funnelops.flows.refined_runner import PARAM_TYPES, RefinedJob, sql_problem
from funnelops.flows.source_checks import FlowSourceError
from funnelops.spec.sqlrefs import SqlError


class BigQueryRefined:
    """:class:`funnelops.flows.engines.base.RefinedEngine` on BigQuery.

    `client` is a `google.cloud.bigquery.Client`; `project` qualifies table names; `schemas`
    maps `dataset.table` to the table's columns when the project defines them.
    """

    def __init__(self, client: Any, project: str, *, location: str | None = None,
                 schemas: dict[str, Any] | None = None) -> None:
        self.client, self.project, self.location = client, project, location
        self.schemas = schemas or {}

    @classmethod
    @contextmanager
    def open(cls, ctx: RunContext, clients: Callable[[], Any]) -> Iterator[BigQueryRefined]:
        """An engine on the clients `clients()` returns (an object with `.bigquery`, `.project`
        and `.close()`), closed at the end of the run."""
        own = clients()
        try:
            yield cls(own.bigquery, own.project, location=getattr(ctx.loaded.spec.project, "location", None),
                      schemas=getattr(ctx.loaded, "table_schemas", {}))
        finally:
            own.close()

    def run(self, job: RefinedJob, before_commit: Verify) -> int:
        from google.cloud import bigquery

        script, target = self.script(job)
        config = bigquery.QueryJobConfig(query_parameters=self.parameters(job, script), use_legacy_sql=False,
                                         labels={"funnelops-flow": re.sub(r"[^a-z0-9_-]", "-", job.name.lower())})
        before_commit()  # commit point: the script commits on its own, so the last check is before it starts
        try:
            query = self.client.query(script, job_config=config, location=self.location,
                                      job_id_prefix=f"funnelops_refined_{job.name}_")
            rows = list(query.result())
        except Exception as exc:  # google.api_core errors name the statement; keep the flow and table in front
            raise BackendError(f"refined flow {job.name} into {target} failed: {exc}",
                               "check the query in the BigQuery console; nothing was replaced") from None
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def qualified_query(self, job: RefinedJob) -> tuple[str, list[str]]:
        """The job's query with project-qualified table names, and its output column names."""
        from sqlglot import exp

        from funnelops.spec.sql_safety import parse_query

        try:
            tree = parse_query(job.sql, "bigquery")
        except SqlError as exc:
            raise sql_problem(job.flow, exc) from None
        for table in tree.find_all(exp.Table):
            if table.db:  # `dataset.table`; CTE names have no dataset
                table.set("catalog", exp.to_identifier(self.project))
        columns = list(tree.named_selects)
        if not columns or any(c in ("", "*") for c in columns):
            raise FlowSourceError(f"refined flow {job.name}: every output column needs a name (alias it)")
        return tree.sql(dialect="bigquery", comments=False), columns

    def _table_columns(self, address: str) -> list[str] | None:
        cols = self.schemas.get(address)
        if cols is None:
            return None
        names = (c if isinstance(c, str) else (c.get("name") if isinstance(c, dict) else getattr(c, "name", str(c)))
                 for c in cols)
        return [str(n) for n in names if n is not None]  # a nameless dict entry names no column

    def script(self, job: RefinedJob) -> tuple[str, str]:
        """(the transaction script, the fully qualified target `project.dataset.table`)."""
        target = f"`{self.project}.{job.dataset}.{job.table}`"
        query, columns = self.qualified_query(job)
        cols = self._table_columns(f"{job.dataset}.{job.table}")
        unknown = [c for c in columns if cols is not None and c not in cols]
        if unknown:
            raise BackendError(f"refined flow {job.name}: {job.dataset}.{job.table} has no column(s) "
                               f"{', '.join(unknown)}", "alias the query's columns as the table's schema names them")
        where = " AND ".join(f"{c.column} {c.op} @{c.param}" for c in job.predicate(cols))
        script = "\n".join([
            "DECLARE inserted INT64 DEFAULT NULL;",
            "BEGIN TRANSACTION;",
            f"DELETE FROM {target} WHERE {where or 'TRUE'};",  # BigQuery's DELETE needs a WHERE clause
            f"INSERT INTO {target} ({', '.join(f'`{c}`' for c in columns)})\n{query};",
            "SET inserted = @@row_count;",
            "COMMIT TRANSACTION;",
            "SELECT inserted AS inserted_rows;",
        ])
        return script, f"{self.project}.{job.dataset}.{job.table}"

    @staticmethod
    def parameters(job: RefinedJob, script: str) -> list[Any]:
        """The period as typed query parameters, only those the script uses."""
        from google.cloud import bigquery

        return [bigquery.ScalarQueryParameter(name, PARAM_TYPES[name], job.params[name])
                for name in PARAM_TYPES if re.search(r"@" + name + r"\b", script)]
