"""BigQuery datasets, native tables, external tables and views.

Observation is one ``datasets.list`` plus one ``tables.list`` per dataset, shared by the four
handlers (a snapshot, dropped by ``refresh()``). A listing carries labels, location, type,
partitioning and clustering but not schemas, descriptions, view SQL or external sources. So
every write also sets a *fingerprint* label, a hash of the neutral config it applied: when the
listed fingerprint equals the hash of what the project wants now, the unlisted fields are
exactly what we want and the resource is not fetched; any other resource (changed in the
project, made by hand, made before fingerprints) is fetched with a GET and translated in full.
Listed fields always come from the listing, so label, partitioning or clustering drift shows.
``deep=True`` (or FUNNELOPS_GCP_DEEP_OBSERVE=1) fetches everything, Terraform-refresh style.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from collections.abc import Iterable

from funnelops.backends.base import Observed
from funnelops.backends.gcp import retry
from funnelops.backends.gcp.clients import Clients
from funnelops.resources import Resource, canonical_type

MANAGED_LABEL = "funnelops-managed"
FP_LABEL = "funnelops-fp"
_OURS = (MANAGED_LABEL, FP_LABEL)


def fingerprint(cfg: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:20]


def _user_labels(labels: dict[str, Any] | None) -> dict[str, str]:
    return dict(sorted((k, v) for k, v in (labels or {}).items() if k not in _OURS))


def _partitioning(tp: dict[str, Any] | None) -> dict[str, Any] | None:
    return {"field": tp.get("field"), "type": tp.get("type", "DAY")} if tp else None


def _source(cfg: dict[str, Any]) -> tuple[list[str], str]:
    base = f"gs://{cfg['bucket']}/" + (cfg["prefix"] + "/" if cfg["prefix"] else "")
    return [base + "*"], base


class Snapshot:
    """Datasets and their table listings, read once per plan (bounded parallel)."""

    def __init__(self, clients: Clients, parallel: int) -> None:
        self.clients = clients
        self.parallel = parallel
        self._lock = threading.Lock()
        self._data: dict[str, Any] | None = None

    def invalidate(self) -> None:
        with self._lock:
            self._data = None

    def get(self, wanted_datasets: set[str]) -> dict[str, Any]:
        with self._lock:
            if self._data is None:
                self._data = self._read(wanted_datasets)
            return self._data

    def _read(self, wanted: set[str]) -> dict[str, Any]:
        bq = self.clients.bigquery
        datasets = retry.call(lambda: [d._properties for d in bq.list_datasets(
            project=self.clients.project, retry=None)], f"datasets of project {self.clients.project}",
            permission="bigquery.datasets.list")
        ours = [d for d in datasets if d["datasetReference"]["datasetId"] in wanted
                or MANAGED_LABEL in (d.get("labels") or {})]

        def tables(ds: dict[str, Any]) -> list[dict[str, Any]]:
            did = ds["datasetReference"]["datasetId"]
            return retry.call(lambda: [t._properties for t in bq.list_tables(
                f"{self.clients.project}.{did}", max_results=None, page_size=1000, retry=None)],
                f"tables of dataset {did}", permission="bigquery.tables.list")

        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            listed = list(pool.map(tables, ours))
        return {"datasets": {d["datasetReference"]["datasetId"]: d for d in ours},
                "tables": {f"{t['tableReference']['datasetId']}.{t['tableReference']['tableId']}": t
                           for ts in listed for t in ts}}


class _BigQueryHandler(ABC):
    kind = ""
    table_type = ""

    def __init__(self, clients: Clients, snapshot: Snapshot, desired: dict[str, dict[str, Any]],
                 parallel: int = 16, deep: bool = False) -> None:
        self.clients = clients
        self.snapshot = snapshot
        self.desired = desired  # address -> neutral config the project wants (any stage)
        self.parallel = parallel
        self.deep = deep

    @property
    def bq(self) -> Any:
        return self.clients.bigquery

    def _datasets_wanted(self, names: Iterable[str]) -> set[str]:
        return {a.split(".", 1)[0] for a in self.desired} | {n.split(".", 1)[0] for n in names}

    def _from_listing(self, address: str, entry: dict[str, Any]) -> dict[str, Any] | None:
        """The neutral config from the listing alone, if the fingerprint vouches for the rest."""
        want = self.desired.get(address)
        labels = entry.get("labels") or {}
        if self.deep or want is None or labels.get(FP_LABEL) != fingerprint(want):
            return None
        return self._overlay(dict(want), entry)

    def _overlay(self, cfg: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        cfg["labels"] = _user_labels(entry.get("labels"))
        return cfg

    def _observe_entries(self, entries: dict[str, dict[str, Any]], fetch) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        slow = []
        for address, entry in entries.items():
            cfg = self._from_listing(address, entry)
            if cfg is None:
                slow.append(address)
            else:
                out[address] = Observed(cfg)
        if slow:
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                for address, full in zip(slow, pool.map(fetch, slow)):
                    if full is not None:
                        out[address] = Observed(self.config_of(full))
        return out

    def _labels_patch(self, res: Resource, observed: Observed | None) -> dict[str, Any]:
        labels: dict[str, Any] = {k: None for k in observed.config.get("labels") or {}} if observed else {}
        labels.update(res.config["labels"])
        labels.update({MANAGED_LABEL: "true", FP_LABEL: fingerprint(res.config)})
        return labels

    @abstractmethod
    def config_of(self, full: dict[str, Any]) -> dict[str, Any]:
        """A resource as BigQuery returns it, in the neutral shape."""


class DatasetHandler(_BigQueryHandler):
    kind = "dataset"

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        names = list(names)
        snap = self.snapshot.get(self._datasets_wanted(names))
        return self._observe_entries(snap["datasets"], self._get)

    def _overlay(self, cfg: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        cfg = super()._overlay(cfg, entry)
        cfg["location"] = (entry.get("location") or "").upper()
        return cfg

    def _get(self, name: str) -> dict[str, Any] | None:
        from google.api_core import exceptions

        try:
            return retry.call(lambda: self.bq.get_dataset(f"{self.clients.project}.{name}", retry=None)._properties,
                              f"dataset {name}", permission="bigquery.datasets.get", raw=True)
        except exceptions.NotFound:
            return None
        except Exception as exc:
            raise retry.describe(exc, f"dataset {name}", "bigquery.datasets.get") from None

    def config_of(self, full: dict[str, Any]) -> dict[str, Any]:
        return {"location": (full.get("location") or "").upper(), "description": full.get("description") or "",
                "labels": _user_labels(full.get("labels"))}

    def body(self, res: Resource, observed: Observed | None = None) -> dict[str, Any]:
        return {"datasetReference": {"projectId": self.clients.project, "datasetId": res.name},
                "location": res.config["location"], "description": res.config["description"],
                "labels": self._labels_patch(res, observed)}

    def create(self, res: Resource) -> None:
        from google.api_core import exceptions
        from google.cloud import bigquery

        try:
            retry.call(lambda: self.bq.create_dataset(bigquery.Dataset.from_api_repr(self.body(res)), retry=None),
                       f"dataset {res.name}", permission="bigquery.datasets.create", raw=True)
        except exceptions.Conflict:
            self.update(res, None, ["description", "labels"])
        except Exception as exc:
            raise retry.describe(exc, f"dataset {res.name}", "bigquery.datasets.create") from None

    def update(self, res: Resource, observed: Observed | None, changed: list[str]) -> None:
        from google.cloud import bigquery

        ds = bigquery.Dataset.from_api_repr(self.body(res, observed))
        retry.call(lambda: self.bq.update_dataset(ds, ["description", "labels"], retry=None),
                   f"dataset {res.name}", permission="bigquery.datasets.update")
        self.snapshot.invalidate()

    def delete(self, name: str, observed: Observed) -> None:
        retry.call(lambda: self.bq.delete_dataset(f"{self.clients.project}.{name}", delete_contents=False,
                                                  not_found_ok=True, retry=None),
                   f"dataset {name}", permission="bigquery.datasets.delete")


class _TableLike(_BigQueryHandler):
    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        names = list(names)
        snap = self.snapshot.get(self._datasets_wanted(names))
        wanted = set(names) | set(self.desired)
        entries = {a: t for a, t in snap["tables"].items() if t.get("type") == self.table_type
                   and (a in wanted or MANAGED_LABEL in (t.get("labels") or {}))}
        return self._observe_entries(entries, self._get)

    def _ref(self, address: str) -> str:
        return f"{self.clients.project}.{address}"

    def _get(self, address: str) -> dict[str, Any] | None:
        from google.api_core import exceptions

        try:
            return retry.call(lambda: self.bq.get_table(self._ref(address), retry=None)._properties,
                              f"table {address}", permission="bigquery.tables.get", raw=True)
        except exceptions.NotFound:
            return None
        except Exception as exc:
            raise retry.describe(exc, f"table {address}", "bigquery.tables.get") from None

    def body(self, res: Resource, observed: Observed | None = None) -> dict[str, Any]:
        ds, name = res.name.split(".", 1)
        out = {"tableReference": {"projectId": self.clients.project, "datasetId": ds, "tableId": name},
               "description": res.config["description"], "labels": self._labels_patch(res, observed)}
        out.update(self.kind_body(res.config))
        return out

    @abstractmethod
    def kind_body(self, cfg: dict[str, Any]) -> dict[str, Any]:
        """The part of a Table body that differs by kind (schema, externalDataConfiguration, view)."""

    def create(self, res: Resource) -> None:
        from google.api_core import exceptions
        from google.cloud import bigquery

        what = f"{self.kind.replace('_', ' ')} {res.name}"
        try:
            retry.call(lambda: self.bq.create_table(bigquery.Table.from_api_repr(self.body(res)), retry=None),
                       what, permission="bigquery.tables.create", raw=True)
        except exceptions.Conflict:
            full = self._get(res.name)
            self.update(res, Observed(self.config_of(full)) if full else None, list(res.config))
        except Exception as exc:
            raise retry.describe(exc, what, "bigquery.tables.create") from None

    def update(self, res: Resource, observed: Observed | None, changed: list[str]) -> None:
        from google.cloud import bigquery

        body = self.body(res, observed)
        fields = [k for k in body if k != "tableReference"]
        table = bigquery.Table.from_api_repr(body)
        retry.call(lambda: self.bq.update_table(table, fields, retry=None),
                   f"{self.kind.replace('_', ' ')} {res.name}", permission="bigquery.tables.update")

    def delete(self, name: str, observed: Observed) -> None:
        retry.call(lambda: self.bq.delete_table(self._ref(name), not_found_ok=True, retry=None),
                   f"{self.kind.replace('_', ' ')} {name}", permission="bigquery.tables.delete")


class TableHandler(_TableLike):
    kind = "table"
    table_type = "TABLE"

    def _overlay(self, cfg: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
        cfg = super()._overlay(cfg, entry)
        cfg["partitioning"] = _partitioning(entry.get("timePartitioning"))
        cfg["clustering"] = list((entry.get("clustering") or {}).get("fields") or [])
        return cfg

    def config_of(self, full: dict[str, Any]) -> dict[str, Any]:
        fields = (full.get("schema") or {}).get("fields") or []
        return {"description": full.get("description") or "",
                "schema": [{"name": f["name"], "type": canonical_type(f.get("type", "STRING")),
                            "mode": f.get("mode") or "NULLABLE"} for f in fields],
                "partitioning": _partitioning(full.get("timePartitioning")),
                "clustering": list((full.get("clustering") or {}).get("fields") or []),
                "labels": _user_labels(full.get("labels"))}

    def kind_body(self, cfg: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": {"fields": [dict(c) for c in cfg["schema"]]}}
        if cfg.get("partitioning"):
            out["timePartitioning"] = {"type": cfg["partitioning"]["type"], "field": cfg["partitioning"]["field"]}
        out["clustering"] = {"fields": list(cfg["clustering"])} if cfg.get("clustering") else None
        return out

    def body(self, res: Resource, observed: Observed | None = None) -> dict[str, Any]:
        out = super().body(res, observed)
        if out.get("clustering") is None:
            out.pop("clustering", None)
            if observed is not None and observed.config.get("clustering"):
                out["clustering"] = None  # PATCH null clears it
        return out

    def update(self, res: Resource, observed: Observed | None, changed: list[str]) -> None:
        body = self.body(res, observed)
        body.pop("timePartitioning", None)  # a partitioning change is a replace, never a patch
        from google.cloud import bigquery

        fields = [k for k in body if k != "tableReference"]
        retry.call(lambda: self.bq.update_table(bigquery.Table.from_api_repr(body), fields, retry=None),
                   f"table {res.name}", permission="bigquery.tables.update")

    def rows(self, name: str) -> int:
        full = self._get(name)
        return int((full or {}).get("numRows") or 0)


class ExternalTableHandler(_TableLike):
    kind = "external_table"
    table_type = "EXTERNAL"

    def config_of(self, full: dict[str, Any]) -> dict[str, Any]:
        ext = full.get("externalDataConfiguration") or {}
        uri = (ext.get("sourceUris") or [""])[0]
        path = uri[len("gs://"):] if uri.startswith("gs://") else uri
        bucket, _, rest = path.partition("/")
        prefix = rest[:-1] if rest.endswith("*") else rest
        return {"format": ext.get("sourceFormat", ""), "bucket": bucket, "prefix": prefix.rstrip("/"),
                "hive_partitioning": bool(ext.get("hivePartitioningOptions")),
                "description": full.get("description") or "", "labels": _user_labels(full.get("labels"))}

    def kind_body(self, cfg: dict[str, Any]) -> dict[str, Any]:
        uris, base = _source(cfg)
        ext: dict[str, Any] = {"sourceFormat": cfg["format"], "sourceUris": uris}
        if cfg["hive_partitioning"]:
            ext["hivePartitioningOptions"] = {"mode": "AUTO", "sourceUriPrefix": base}
        return {"externalDataConfiguration": ext}


class ViewHandler(_TableLike):
    kind = "view"
    table_type = "VIEW"

    def config_of(self, full: dict[str, Any]) -> dict[str, Any]:
        return {"query": (full.get("view") or {}).get("query", ""), "description": full.get("description") or "",
                "labels": _user_labels(full.get("labels"))}

    def kind_body(self, cfg: dict[str, Any]) -> dict[str, Any]:
        return {"view": {"query": cfg["query"], "useLegacySql": False}}
