"""BigQuery query jobs: just enough for ``client.query(...).result()`` and ``query_and_wait``.

The double does not execute SQL. Each query is recorded (``double.bigquery.jobs.queries``) and
answered from a list of (regex -> rows) answers that a test registers; by default a
``SELECT COUNT(*)`` answers 0 and any other SELECT answers no rows, DDL/DML succeed with no
rows affected. That is what funnelops needs to prove its calls are well formed; the SQL itself
is proven on the local backend.

Both client paths are served: ``jobs.insert`` then ``jobs.getQueryResults``/``jobs.get``
(``Client.query``), and ``jobs.query`` (``Client.query_and_wait``).
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .common import ApiError, Request, already_exists, not_found, now_millis, page

if TYPE_CHECKING:
    from .bigquery import BigQueryService

_DDL = re.compile(r"^\s*(CREATE|DROP|ALTER|TRUNCATE)\b", re.I)
_DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE|MERGE)\b", re.I)


@dataclass
class Answer:
    pattern: re.Pattern[str]
    rows: list[list[Any]]
    schema: list[tuple[str, str]]
    error: str | None = None


class QueryJobs:
    def __init__(self, bq: BigQueryService) -> None:
        self.bq = bq
        self.reset()

    def reset(self) -> None:
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self._results: dict[tuple[str, str], tuple[Answer, str]] = {}
        self._answers: list[Answer] = []
        self.queries: list[str] = []
        # The query configurations received (query text, parameters, labels...), in order, so a
        # test can check what a caller sent beyond the SQL text (e.g. a script's parameters).
        self.configs: list[dict[str, Any]] = []

    def handlers(self) -> dict[str, Any]:
        return {"bigquery.jobs.insert": self._insert, "bigquery.jobs.get": self._get,
                "bigquery.jobs.getQueryResults": self._results_page,
                "bigquery.jobs.query": self._query, "bigquery.jobs.cancel": self._cancel}

    def add_answer(self, pattern: str, rows: list[list[Any]] | None,
                   schema: list[tuple[str, str]] | None, error: str | None) -> None:
        with self.bq.double.lock:
            self._answers.append(Answer(re.compile(pattern, re.I | re.S), rows or [],
                                        schema or [], error))

    # -- answering -------------------------------------------------------------------------
    def _answer(self, sql: str) -> tuple[Answer, str]:
        self.queries.append(sql)
        for ans in reversed(self._answers):
            if ans.pattern.search(sql):
                return ans, "SELECT"
        if _DDL.match(sql):
            return Answer(re.compile(""), [], []), _DDL.match(sql).group(1).upper() + "_TABLE"  # type: ignore[union-attr]
        if _DML.match(sql):
            return Answer(re.compile(""), [], []), _DML.match(sql).group(1).upper()  # type: ignore[union-attr]
        if re.match(r"^\s*SELECT\s+COUNT\s*\(\s*\*\s*\)", sql, re.I):
            return Answer(re.compile(""), [[0]], [("f0_", "INTEGER")]), "SELECT"
        return Answer(re.compile(""), [], []), "SELECT"

    @staticmethod
    def _schema(ans: Answer) -> dict[str, Any]:
        return {"fields": [{"name": n, "type": t, "mode": "NULLABLE"} for n, t in ans.schema]}

    @staticmethod
    def _rows(rows: list[list[Any]]) -> list[dict[str, Any]]:
        def cell(v: Any) -> Any:
            if v is None:
                return None
            return "true" if v is True else "false" if v is False else str(v)
        return [{"f": [{"v": cell(v)} for v in row]} for row in rows]

    def _stats(self, kind: str, ans: Answer) -> dict[str, Any]:
        now = now_millis()
        query: dict[str, Any] = {"statementType": kind, "totalBytesProcessed": "0",
                                 "cacheHit": False}
        if kind in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            query["numDmlAffectedRows"] = "0"
        return {"creationTime": now, "startTime": now, "endTime": now,
                "totalBytesProcessed": "0", "query": query}

    # -- handlers --------------------------------------------------------------------------
    def _insert(self, req: Request) -> tuple[int, Any]:
        project = req.params["projectsId"]
        body = copy.deepcopy(req.body or {})
        ref = body.setdefault("jobReference", {})
        ref.setdefault("projectId", project)
        ref.setdefault("jobId", f"job_{uuid.uuid4().hex}")
        ref.setdefault("location", "US")
        key = (project, ref["jobId"])
        if key in self._jobs:
            raise already_exists(f"Job {project}:{ref['location']}.{ref['jobId']}")
        config = body.setdefault("configuration", {})
        status: dict[str, Any] = {"state": "DONE"}
        stats: dict[str, Any] = {}
        if "query" in config:
            config["jobType"] = "QUERY"
            self.configs.append(copy.deepcopy(config["query"]))
            ans, kind = self._answer(config["query"].get("query", ""))
            self._results[key] = (ans, kind)
            stats = self._stats(kind, ans)
            if ans.error:
                status["errorResult"] = {"reason": "invalidQuery", "message": ans.error}
                status["errors"] = [status["errorResult"]]
        body.update({"kind": "bigquery#job", "id": f"{project}:{ref['location']}.{ref['jobId']}",
                     "selfLink": f"/bigquery/v2/projects/{project}/jobs/{ref['jobId']}",
                     "status": status, "statistics": stats, "user_email": "double@example.com"})
        self._jobs[key] = body
        return 200, copy.deepcopy(body)

    def _job(self, project: str, job_id: str) -> dict[str, Any]:
        job = self._jobs.get((project, job_id))
        if job is None:
            raise not_found(f"Job {project}:{job_id}")
        return job

    def _get(self, req: Request) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._job(req.params["projectsId"], req.params["jobsId"]))

    def _cancel(self, req: Request) -> tuple[int, Any]:
        job = self._job(req.params["projectsId"], req.params["jobsId"])
        return 200, {"kind": "bigquery#jobCancelResponse", "job": copy.deepcopy(job)}

    def _results_page(self, req: Request) -> tuple[int, Any]:
        project, job_id = req.params["projectsId"], req.params["queriesId"]
        job = self._job(project, job_id)
        ans, kind = self._results.get((project, job_id), (Answer(re.compile(""), [], []), "SELECT"))
        if ans.error:
            raise ApiError(400, ans.error, reason="invalidQuery")
        start = int(req.q("startIndex") or 0)
        rows, token = page(ans.rows[start:], req.query, "maxResults", 100000)
        out: dict[str, Any] = {"kind": "bigquery#getQueryResultsResponse", "etag": uuid.uuid4().hex,
                               "jobReference": job["jobReference"], "jobComplete": True,
                               "totalRows": str(len(ans.rows)), "totalBytesProcessed": "0",
                               "cacheHit": False, "schema": self._schema(ans)}
        if rows:
            out["rows"] = self._rows(rows)
        if token:
            out["pageToken"] = token
        if kind != "SELECT" and kind in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            out["numDmlAffectedRows"] = "0"
        return 200, out

    def _query(self, req: Request) -> tuple[int, Any]:
        project = req.params["projectsId"]
        body = req.body or {}
        self.configs.append(copy.deepcopy(body))
        ans, kind = self._answer(body.get("query", ""))
        if ans.error:
            raise ApiError(400, ans.error, reason="invalidQuery")
        ref = {"projectId": project, "jobId": f"job_{uuid.uuid4().hex}",
               "location": body.get("location") or "US"}
        self._results[(project, ref["jobId"])] = (ans, kind)
        self._jobs[(project, ref["jobId"])] = {
            "kind": "bigquery#job", "jobReference": ref, "status": {"state": "DONE"},
            "configuration": {"jobType": "QUERY", "query": {"query": body.get("query", "")}},
            "statistics": self._stats(kind, ans)}
        limit = body.get("maxResults")
        rows = ans.rows if limit is None else ans.rows[:int(limit)]
        out: dict[str, Any] = {"kind": "bigquery#queryResponse", "jobReference": ref,
                               "jobComplete": True, "totalRows": str(len(ans.rows)),
                               "totalBytesProcessed": "0", "cacheHit": False,
                               "schema": self._schema(ans)}
        if rows:
            out["rows"] = self._rows(rows)
        if len(rows) < len(ans.rows):
            out["pageToken"] = str(len(rows))
        if kind in ("INSERT", "UPDATE", "DELETE", "MERGE"):
            out["numDmlAffectedRows"] = "0"
        return 200, out
