"""BigQuery v2 datasets and tables (native, EXTERNAL, VIEW) with the checks the real API makes.

The google-cloud-bigquery client talks to ``{api_endpoint}/bigquery/v2/projects/...`` (the
discovery document's ``servicePath``), uses PATCH for ``update_*`` and sends an ``If-Match``
etag when it has one. Beyond the schemas, this refuses what BigQuery refuses and funnelops must
plan around: a schema change that is not additive (a changed type or a dropped column: such a
change is a replace), a changed partitioning spec, a view in legacy SQL (the default when
``useLegacySql`` is not sent) that uses GoogleSQL backticks, a view that reads a table that does
not exist yet (so views must be created after what they read), a non-empty dataset deleted
without ``deleteContents``.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from .bigquery_jobs import QueryJobs
from .bigquery_rules import (check_evolution, check_fields, label_filter, merge, norm,
                             referenced_tables)
from .common import ApiError, Request, already_exists, bad_request, not_found, now_millis, page

if TYPE_CHECKING:
    from .server import GcpDouble

_DATASET_ID = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_TABLE_ID = re.compile(r"^[\w-]{1,1024}$")
_IMMUTABLE = ("tableReference", "type", "id", "selfLink", "creationTime", "location", "kind")
_DS_IMMUTABLE = ("datasetReference", "id", "selfLink", "creationTime", "kind")


class BigQueryService:
    def __init__(self, double: GcpDouble) -> None:
        self.double = double
        self.jobs = QueryJobs(self)
        self.reset()

    def reset(self) -> None:
        self.check_view_references = True
        # Called with an EXTERNAL table's sourceUris; return an error message to refuse it
        # (e.g. "matched no files"), or None. Lets a test wire the double to fake-gcs-server.
        self.external_source_check: Callable[[list[str]], str | None] | None = None
        self._datasets: dict[tuple[str, str], dict[str, Any]] = {}
        self._tables: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.jobs.reset()

    def handlers(self) -> dict[str, Any]:
        b = "bigquery"
        return {f"{b}.datasets.insert": self._ds_insert, f"{b}.datasets.get": self._ds_get,
                f"{b}.datasets.list": self._ds_list, f"{b}.datasets.patch": self._ds_patch,
                f"{b}.datasets.update": self._ds_patch, f"{b}.datasets.delete": self._ds_delete,
                f"{b}.tables.insert": self._t_insert, f"{b}.tables.get": self._t_get,
                f"{b}.tables.list": self._t_list, f"{b}.tables.patch": self._t_patch,
                f"{b}.tables.update": self._t_patch, f"{b}.tables.delete": self._t_delete,
                **self.jobs.handlers()}

    # -- test helpers ----------------------------------------------------------------------
    def datasets(self) -> list[dict[str, Any]]:
        with self.double.lock:
            return [copy.deepcopy(d) for d in self._datasets.values()]

    def tables(self, dataset: str | None = None) -> list[dict[str, Any]]:
        with self.double.lock:
            return [copy.deepcopy(t) for k, t in self._tables.items() if dataset in (None, k[1])]

    def add_answer(self, pattern: str, rows: list[list[Any]] | None = None,
                   schema: list[tuple[str, str]] | None = None, error: str | None = None) -> None:
        """Answer queries matching ``pattern`` (regex, case-insensitive) with these rows."""
        self.jobs.add_answer(pattern, rows, schema, error)

    def set_num_rows(self, project: str, dataset: str, table: str, rows: int) -> None:
        """Set a native table's numRows, as if a load had written `rows` rows (queries write nothing here)."""
        with self.double.lock:
            self._tables[(project, dataset, table)]["numRows"] = str(rows)

    def has_table(self, project: str, dataset: str, table: str) -> bool:
        return (project, dataset, table) in self._tables

    # -- datasets --------------------------------------------------------------------------
    def _dataset(self, project: str, dataset: str) -> dict[str, Any]:
        ds = self._datasets.get((project, dataset))
        if ds is None:
            raise not_found(f"Dataset {project}:{dataset}")
        return ds

    @staticmethod
    def _if_match(req: Request, current: dict[str, Any]) -> None:
        tag = req.headers.get("if-match")
        if tag and tag != current["etag"]:
            raise ApiError(412, "Precondition check failed.")

    def _ds_insert(self, req: Request) -> tuple[int, Any]:
        project = req.params["projectsId"]
        body = copy.deepcopy(req.body or {})
        ref = body["datasetReference"]
        if ref.setdefault("projectId", project) != project:
            raise bad_request(f"datasetReference.projectId {ref['projectId']} is not {project}")
        if not _DATASET_ID.match(ref["datasetId"]):
            raise bad_request(f"Invalid dataset ID {ref['datasetId']!r}: letters, digits and _")
        key = (project, ref["datasetId"])
        if key in self._datasets:
            raise already_exists(f"Dataset {project}:{ref['datasetId']}")
        now = now_millis()
        body.update({"kind": "bigquery#dataset", "id": f"{project}:{ref['datasetId']}",
                     "selfLink": f"/bigquery/v2/projects/{project}/datasets/{ref['datasetId']}",
                     "etag": uuid.uuid4().hex, "creationTime": now, "lastModifiedTime": now,
                     "type": "DEFAULT"})
        body.setdefault("location", "US")
        body["labels"] = {k: v for k, v in (body.get("labels") or {}).items() if v is not None}
        self._datasets[key] = body
        return 200, copy.deepcopy(body)

    def _ds_get(self, req: Request) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._dataset(req.params["projectsId"], req.params["datasetsId"]))

    def _ds_list(self, req: Request) -> tuple[int, Any]:
        project = req.params["projectsId"]
        wanted = label_filter(req.q("filter"))
        items = [{"kind": "bigquery#dataset", "id": d["id"], "datasetReference": d["datasetReference"],
                  "location": d["location"], **({"labels": d["labels"]} if d.get("labels") else {})}
                 for (p, _), d in sorted(self._datasets.items())
                 if p == project and wanted(d.get("labels") or {})]
        chunk, nxt = page(items, req.query, "maxResults", 1000)
        out: dict[str, Any] = {"kind": "bigquery#datasetList", "etag": uuid.uuid4().hex}
        if chunk:
            out["datasets"] = chunk
        if nxt:
            out["nextPageToken"] = nxt
        return 200, out

    def _ds_patch(self, req: Request) -> tuple[int, Any]:
        cur = self._dataset(req.params["projectsId"], req.params["datasetsId"])
        self._if_match(req, cur)
        body = req.body or {}
        ref = body.get("datasetReference")
        if ref and ref.get("datasetId") not in (None, req.params["datasetsId"]):
            raise bad_request("datasetReference cannot be changed")
        if body.get("location") and body["location"] != cur["location"]:
            raise bad_request(f"Cannot change dataset location from {cur['location']} "
                              f"to {body['location']}")
        new = merge(cur, body, _DS_IMMUTABLE, replace=(req.verb == "PUT"))
        new.update({"etag": uuid.uuid4().hex, "lastModifiedTime": now_millis()})
        self._datasets[(req.params["projectsId"], req.params["datasetsId"])] = new
        return 200, copy.deepcopy(new)

    def _ds_delete(self, req: Request) -> tuple[int, Any]:
        project, dataset = req.params["projectsId"], req.params["datasetsId"]
        self._dataset(project, dataset)
        inside = [k for k in self._tables if k[:2] == (project, dataset)]
        if inside and req.q("deleteContents") != "true":
            raise ApiError(400, f"Dataset {project}:{dataset} is still in use",
                           reason="resourceInUse")
        for k in inside:
            del self._tables[k]
        del self._datasets[(project, dataset)]
        return 204, None

    # -- tables ----------------------------------------------------------------------------
    def _table(self, req: Request) -> dict[str, Any]:
        p, d, t = req.params["projectsId"], req.params["datasetsId"], req.params["tablesId"]
        self._dataset(p, d)
        tbl = self._tables.get((p, d, t))
        if tbl is None:
            raise not_found(f"Table {p}:{d}.{t}")
        return tbl

    def _t_insert(self, req: Request) -> tuple[int, Any]:
        p, d = req.params["projectsId"], req.params["datasetsId"]
        ds = self._dataset(p, d)
        body = copy.deepcopy(req.body or {})
        ref = body["tableReference"]
        if (ref.get("projectId"), ref.get("datasetId")) != (p, d):
            raise bad_request(f"tableReference {ref} does not belong to dataset {p}:{d}")
        if not _TABLE_ID.match(ref.get("tableId", "")):
            raise bad_request(f"Invalid table ID {ref.get('tableId')!r}")
        if (p, d, ref["tableId"]) in self._tables:
            raise already_exists(f"Table {p}:{d}.{ref['tableId']}")
        kinds = [k for k in ("view", "materializedView", "externalDataConfiguration") if body.get(k)]
        if len(kinds) > 1:
            raise bad_request(f"A table cannot be both of {kinds}")
        body["type"] = {"view": "VIEW", "materializedView": "MATERIALIZED_VIEW",
                        "externalDataConfiguration": "EXTERNAL"}.get(kinds[0] if kinds else "", "TABLE")
        self._check_table(p, body, None)
        now = now_millis()
        body.update({"kind": "bigquery#table", "id": f"{p}:{d}.{ref['tableId']}",
                     "selfLink": f"/bigquery/v2/projects/{p}/datasets/{d}/tables/{ref['tableId']}",
                     "etag": uuid.uuid4().hex, "creationTime": now, "lastModifiedTime": now,
                     "location": ds["location"]})
        body["labels"] = {k: v for k, v in (body.get("labels") or {}).items() if v is not None}
        if body["type"] == "TABLE":
            body.update({"numRows": "0", "numBytes": "0"})
        self._tables[(p, d, ref["tableId"])] = body
        return 200, copy.deepcopy(body)

    def _t_get(self, req: Request) -> tuple[int, Any]:
        return 200, copy.deepcopy(self._table(req))

    def _t_list(self, req: Request) -> tuple[int, Any]:
        p, d = req.params["projectsId"], req.params["datasetsId"]
        self._dataset(p, d)
        items = []
        for (tp, td, _), t in sorted(self._tables.items()):
            if (tp, td) != (p, d):
                continue
            entry = {k: t[k] for k in ("kind", "id", "tableReference", "type", "creationTime",
                                       "expirationTime", "timePartitioning", "rangePartitioning",
                                       "clustering") if t.get(k) is not None}
            if t.get("labels"):
                entry["labels"] = t["labels"]
            if t["type"] == "VIEW":
                entry["view"] = {"useLegacySql": bool(t["view"].get("useLegacySql", True))}
            items.append(entry)
        chunk, nxt = page(items, req.query, "maxResults", 1000)
        out: dict[str, Any] = {"kind": "bigquery#tableList", "etag": uuid.uuid4().hex,
                               "totalItems": len(items)}
        if chunk:
            out["tables"] = chunk
        if nxt:
            out["nextPageToken"] = nxt
        return 200, out

    def _t_patch(self, req: Request) -> tuple[int, Any]:
        cur = self._table(req)
        self._if_match(req, cur)
        body = req.body or {}
        ref = body.get("tableReference")
        if ref and ref.get("tableId") not in (None, req.params["tablesId"]):
            raise bad_request("tableReference cannot be changed")
        new = merge(cur, body, _IMMUTABLE, replace=(req.verb == "PUT"))
        kind = {"VIEW": "view", "EXTERNAL": "externalDataConfiguration",
                "MATERIALIZED_VIEW": "materializedView"}.get(cur["type"])
        if kind and not new.get(kind):
            raise bad_request(f"Cannot change a {cur['type']} into another table type")
        others = [k for k in ("view", "externalDataConfiguration", "materializedView")
                  if k != kind and new.get(k)]
        if others:
            raise bad_request(f"Cannot change a {cur['type']} table by setting {others}")
        self._check_table(req.params["projectsId"], new, cur)
        new.update({"etag": uuid.uuid4().hex, "lastModifiedTime": now_millis()})
        self._tables[(req.params["projectsId"], req.params["datasetsId"], req.params["tablesId"])] = new
        return 200, copy.deepcopy(new)

    def _t_delete(self, req: Request) -> tuple[int, Any]:
        t = self._table(req)
        ref = t["tableReference"]
        del self._tables[(ref["projectId"], ref["datasetId"], ref["tableId"])]
        return 204, None

    # -- semantic checks -------------------------------------------------------------------
    def _check_table(self, project: str, t: dict[str, Any], old: dict[str, Any] | None) -> None:
        fields = (t.get("schema") or {}).get("fields") or []
        check_fields(fields, "")
        if t["type"] == "TABLE":
            if old is not None:
                check_evolution(old, t)
            names = {f["name"].lower(): f for f in fields}
            part = t.get("timePartitioning")
            if part and part.get("field"):
                col = names.get(part["field"].lower())
                if col is None or norm(col["type"]) not in ("DATE", "TIMESTAMP", "DATETIME"):
                    raise bad_request(f"The field specified for time partitioning "
                                      f"({part['field']}) must be a top-level DATE, TIMESTAMP or "
                                      "DATETIME field")
            clus = (t.get("clustering") or {}).get("fields") or []
            if len(clus) > 4 or any(c.lower() not in names for c in clus):
                raise bad_request(f"Clustering fields {clus} must be at most 4 top-level columns")
        if t["type"] == "VIEW":
            self._check_view(project, t)
        if t["type"] == "EXTERNAL":
            self._check_external(t["externalDataConfiguration"])

    def _check_view(self, project: str, t: dict[str, Any]) -> None:
        view = t["view"]
        sql = view.get("query") or ""
        if view.get("useLegacySql", True) and "`" in sql:
            raise ApiError(400, "Invalid table name: legacy SQL (the default when "
                           "view.useLegacySql is not false) does not accept backquoted "
                           "GoogleSQL identifiers", reason="invalidQuery")
        if view.get("useLegacySql", True) or not self.check_view_references:
            return
        for ref in referenced_tables(sql):
            parts = ref.split(".")
            if len(parts) == 1:
                raise ApiError(400, f'Table "{ref}" must be qualified with a dataset '
                               "(e.g. dataset.table).", reason="invalidQuery")
            proj, ds, name = ([project] + parts)[-3:]
            if (proj, ds) not in self._datasets:
                raise not_found(f"Dataset {proj}:{ds} was not found")
            if (proj, ds, name) not in self._tables:
                raise not_found(f"Table {proj}:{ds}.{name} was not found")

    def _check_external(self, cfg: dict[str, Any]) -> None:
        uris = cfg.get("sourceUris") or []
        if cfg.get("sourceFormat") in ("PARQUET", "CSV", "NEWLINE_DELIMITED_JSON", "AVRO", "ORC"):
            bad = [u for u in uris if not u.startswith("gs://")]
            if bad:
                raise bad_request(f"Source URI must be a Google Cloud Storage location: {bad[0]}")
        hive = cfg.get("hivePartitioningOptions") or {}
        prefix = hive.get("sourceUriPrefix")
        if prefix and not all(u.startswith(prefix.split("{")[0]) for u in uris):
            raise bad_request(f"hivePartitioningOptions.sourceUriPrefix {prefix} must be a "
                              "prefix of every source URI")
        if self.external_source_check is not None:
            message = self.external_source_check(list(uris))
            if message:
                raise bad_request(message)
