"""GCS: objects (what external tables wait for) and buckets as managed resources.

Buckets are observed with one ``buckets.list`` call. Which buckets are funnelops' own, and the
bucket settings a server does not keep, come from small *records*: one object per bucket under
``gs://<artifacts>/funnelops/buckets/`` whose metadata holds the neutral config funnelops last
applied and the fields the server demonstrably dropped (its answer to our write differed from
what we sent). Why: Google keeps every bucket setting, so there the live metadata is the truth
and records only mark ownership; fake-gcs-server drops location, storage class, labels and
lifecycle rules, and without records a re-plan against it would never be a no-op. The rule is
"trust the server for every field it proved it stores".
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from collections.abc import Callable, Iterable

from funnelops.backends.base import Observed
from funnelops.backends.gcp import retry
from funnelops.backends.gcp.clients import Clients
from funnelops.errors import BackendError
from funnelops.resources import Resource

MANAGED_LABEL = "funnelops-managed"
RECORDS = "funnelops/buckets/"
FIELDS = ("location", "storage_class", "labels", "lifecycle_rules", "uniform_bucket_level_access",
          "public_access_prevention", "versioning")


def default_bucket_config(location: str) -> dict[str, Any]:
    """A bucket the spec does not declare (the artifacts bucket): the spec's safe defaults."""
    return {"location": location.upper(), "storage_class": "STANDARD", "labels": {}, "lifecycle_rules": [],
            "uniform_bucket_level_access": True, "public_access_prevention": "enforced", "versioning": False}


def _hidden(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith((".", "_")) or name.endswith("/")


class GcsStorage:
    """The Storage protocol on GCS (small pages: we only need to know *whether* data exists)."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    @staticmethod
    def _prefix(prefix: str) -> str:
        prefix = prefix.strip("/")
        return prefix + "/" if prefix else ""

    def has_objects(self, bucket: str, prefix: str, suffix: str = "") -> bool:
        from google.api_core import exceptions

        def probe() -> bool:
            pages = self.clients.storage.list_blobs(bucket, prefix=self._prefix(prefix), page_size=50,
                                                    max_results=500, retry=None)
            return any(b.name.endswith(suffix) and not _hidden(b.name) for b in pages)

        try:
            return retry.call(probe, f"gs://{bucket}/{self._prefix(prefix)}", permission="storage.objects.list",
                              raw=True)
        except exceptions.NotFound:
            return False
        except Exception as exc:
            raise retry.describe(exc, f"gs://{bucket}/{self._prefix(prefix)}", "storage.objects.list") from None

    def list_objects(self, bucket: str, prefix: str) -> list[str]:
        from google.api_core import exceptions

        try:
            return retry.call(lambda: sorted(b.name for b in self.clients.storage.list_blobs(
                bucket, prefix=self._prefix(prefix), retry=None) if not b.name.endswith("/")),
                f"gs://{bucket}/{self._prefix(prefix)}", raw=True)
        except exceptions.NotFound:
            return []
        except Exception as exc:
            raise retry.describe(exc, f"gs://{bucket}", "storage.objects.list") from None

    def read_object(self, bucket: str, name: str) -> bytes | None:
        from google.api_core import exceptions

        blob = self.clients.storage.bucket(bucket).blob(name)
        try:
            return retry.call(lambda: blob.download_as_bytes(retry=None), f"gs://{bucket}/{name}", raw=True)
        except exceptions.NotFound:
            return None
        except Exception as exc:
            raise retry.describe(exc, f"gs://{bucket}/{name}", "storage.objects.get") from None

    def put_object(self, bucket: str, name: str, data: bytes) -> None:
        blob = self.clients.storage.bucket(bucket).blob(name)
        retry.call(lambda: blob.upload_from_string(data, retry=None), f"gs://{bucket}/{name}",
                   permission="storage.objects.create")

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        names = self.list_objects(bucket, prefix)
        b = self.clients.storage.bucket(bucket)
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: retry.call(lambda: b.blob(n).delete(retry=None), f"gs://{bucket}/{n}"), names))
        return len(names)

    def empty_bucket(self, bucket: str) -> int:
        """Delete every object of ``bucket``, noncurrent versions and "folder/" markers included:
        Google refuses to delete a bucket that still holds any (a bucket that had versioning on
        keeps the old generations after it is turned off)."""
        from google.api_core import exceptions

        try:
            listed = retry.call(lambda: [(b.name, b.generation) for b in self.clients.storage.list_blobs(
                bucket, versions=True, retry=None)], f"gs://{bucket}", raw=True)
        except exceptions.NotFound:
            return 0
        except Exception as exc:
            raise retry.describe(exc, f"gs://{bucket}", "storage.objects.list") from None
        b = self.clients.storage.bucket(bucket)

        def drop(item: tuple[str, int]) -> None:
            try:
                retry.call(lambda: b.blob(item[0], generation=item[1]).delete(retry=None),
                           f"gs://{bucket}/{item[0]}#{item[1]}", raw=True)
            except exceptions.NotFound:
                pass
            except Exception as exc:
                raise retry.describe(exc, f"gs://{bucket}/{item[0]}", "storage.objects.delete") from None

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(drop, listed))
        return len(listed)


def bucket_config(props: dict[str, Any]) -> dict[str, Any]:
    """A bucket resource (GCS JSON) as the neutral config."""
    labels = {k: v for k, v in (props.get("labels") or {}).items() if k != MANAGED_LABEL}
    rules = []
    for r in (props.get("lifecycle") or {}).get("rule") or []:
        action, cond = r.get("action") or {}, r.get("condition") or {}
        rule: dict[str, Any] = {"action": action.get("type", ""), "age_days": int(cond.get("age", 0))}
        if action.get("storageClass"):
            rule["storage_class"] = action["storageClass"]
        rules.append(rule)
    iam = props.get("iamConfiguration") or {}
    return {"location": (props.get("location") or "").upper(),
            "storage_class": props.get("storageClass") or "STANDARD",
            "labels": dict(sorted(labels.items())), "lifecycle_rules": rules,
            "uniform_bucket_level_access": bool((iam.get("uniformBucketLevelAccess") or {}).get("enabled")),
            # older buckets report "unspecified", which Google treats as inherited
            "public_access_prevention": "enforced" if iam.get("publicAccessPrevention") == "enforced" else "inherited",
            "versioning": bool((props.get("versioning") or {}).get("enabled"))}


def _lifecycle(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in cfg["lifecycle_rules"]:
        action = {"type": r["action"]}
        if r.get("storage_class"):
            action["storageClass"] = r["storage_class"]
        out.append({"action": action, "condition": {"age": r["age_days"]}})
    return out


def bucket_body(name: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """The ``buckets.insert`` JSON body for a neutral config: what :meth:`BucketHandler.create`
    sends through the client, for reviewers (an offline plan) and tests."""
    return {"name": name, "location": cfg["location"], "storageClass": cfg["storage_class"],
            "labels": {**cfg["labels"], MANAGED_LABEL: "true"}, "lifecycle": {"rule": _lifecycle(cfg)},
            "iamConfiguration": {"uniformBucketLevelAccess": {"enabled": cfg["uniform_bucket_level_access"]},
                                 "publicAccessPrevention": cfg["public_access_prevention"]},
            "versioning": {"enabled": cfg["versioning"]}}


class BucketRecords:
    """Per-bucket records in the artifacts bucket (object metadata, so one list reads all)."""

    def __init__(self, clients: Clients, artifacts: str) -> None:
        self.clients = clients
        self.artifacts = artifacts

    def all(self) -> dict[str, dict[str, Any]]:
        from google.api_core import exceptions

        try:
            blobs = retry.call(lambda: list(self.clients.storage.list_blobs(
                self.artifacts, prefix=RECORDS, retry=None)), f"gs://{self.artifacts}/{RECORDS}", raw=True)
        except exceptions.NotFound:
            return {}
        out = {}
        for b in blobs:
            meta = b.metadata or {}
            try:
                out[b.name[len(RECORDS):-len(".json")]] = {"config": json.loads(meta.get("config", "{}")),
                                                           "unkept": json.loads(meta.get("unkept", "[]"))}
            except ValueError:
                continue
        return out

    def put(self, name: str, config: dict[str, Any], unkept: list[str]) -> None:
        blob = self.clients.storage.bucket(self.artifacts).blob(f"{RECORDS}{name}.json")
        blob.metadata = {"config": json.dumps(config, sort_keys=True), "unkept": json.dumps(sorted(unkept))}
        body = json.dumps({"bucket": name, "config": config, "unkept": sorted(unkept)}, sort_keys=True)
        retry.call(lambda: blob.upload_from_string(body, content_type="application/json", retry=None),
                   f"gs://{self.artifacts}/{RECORDS}{name}.json", permission="storage.objects.create")

    def delete(self, name: str) -> None:
        from google.api_core import exceptions

        blob = self.clients.storage.bucket(self.artifacts).blob(f"{RECORDS}{name}.json")
        try:
            retry.call(lambda: blob.delete(retry=None), f"gs://{self.artifacts}/{RECORDS}{name}.json", raw=True)
        except exceptions.NotFound:
            pass


class BucketHandler:
    kind = "bucket"

    def __init__(self, clients: Clients, storage: GcsStorage, records: BucketRecords,
                 ensure_artifacts: Callable[[], None], parallel: int = 16) -> None:
        self.clients = clients
        self.storage = storage
        self.records = records
        self.ensure_artifacts = ensure_artifacts
        self.parallel = parallel

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        wanted = set(names)
        with ThreadPoolExecutor(max_workers=2) as pool:
            listing = pool.submit(retry.call, lambda: [b._properties for b in self.clients.storage.list_buckets(
                project=self.clients.project, retry=None)], f"buckets of project {self.clients.project}",
                permission="storage.buckets.list")
            records = pool.submit(self.records.all)
            live, recs = listing.result(), records.result()
        out: dict[str, Observed] = {}
        for props in live:
            name = props["name"]
            rec = recs.get(name)
            if name not in wanted and rec is None and MANAGED_LABEL not in (props.get("labels") or {}):
                continue  # not ours: never touched, never proposed for deletion
            cfg = bucket_config(props)
            if rec is not None:  # fields the bucket does not report back keep the recorded value
                for f in rec.get("unkept", []):
                    if f in rec["config"]:
                        cfg[f] = rec["config"][f]
            out[name] = Observed(cfg)
        if out:  # whether a bucket holds objects guards deletes and replaces (one small list each)
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                held = dict(zip(out, pool.map(lambda n: self.storage.has_objects(n, ""), list(out))))
            for name, obs in out.items():
                obs.rows = 1 if held[name] else 0
        return out

    @staticmethod
    def _apply(bucket: Any, cfg: dict[str, Any], fields: Iterable[str] = FIELDS) -> None:
        """Set ``fields`` of ``cfg`` on ``bucket``: the client then sends exactly those (a PATCH
        carries only what changed; location cannot change in place and is never patched)."""
        from google.cloud.storage.bucket import IAMConfiguration

        fields = set(fields)
        if "storage_class" in fields:
            bucket.storage_class = cfg["storage_class"]
        if "labels" in fields:
            bucket.labels = {**cfg["labels"], MANAGED_LABEL: "true"}
        if "lifecycle_rules" in fields:
            bucket.lifecycle_rules = _lifecycle(cfg)
        if fields & {"uniform_bucket_level_access", "public_access_prevention"}:
            # A fresh IAMConfiguration, not the one read back: that one carries the server's
            # lockedTime and the deprecated bucketPolicyOnly twin, which are not ours to send.
            bucket._patch_property("iamConfiguration", IAMConfiguration(
                bucket, public_access_prevention=cfg["public_access_prevention"],
                uniform_bucket_level_access_enabled=cfg["uniform_bucket_level_access"]))
        if "versioning" in fields:
            bucket.versioning_enabled = cfg["versioning"]

    def _record(self, res: Resource, answer: dict[str, Any]) -> None:
        seen = bucket_config(answer)
        unkept = [f for f in FIELDS if seen.get(f) != res.config.get(f)]
        self.ensure_artifacts()
        self.records.put(res.name, res.config, unkept)

    def create(self, res: Resource) -> None:
        from google.api_core import exceptions

        bucket = self.clients.storage.bucket(res.name)
        self._apply(bucket, res.config)
        what = f"bucket {res.name}"
        try:
            retry.call(lambda: self.clients.storage.create_bucket(
                bucket, project=self.clients.project, location=res.config["location"], retry=None),
                what, permission="storage.buckets.create", raw=True)
        except exceptions.Conflict:
            # Made meanwhile (the artifacts bucket by the first template upload, or by hand in
            # this project): converge its settings instead of failing.
            return self.update(res, Observed(res.config), list(FIELDS))
        except Exception as exc:
            raise retry.describe(exc, what, "storage.buckets.create") from None
        self._record(res, bucket._properties)

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        what = f"bucket {res.name}"
        bucket = retry.call(lambda: self.clients.storage.get_bucket(res.name, retry=None), what,
                            permission="storage.buckets.get")
        self._apply(bucket, res.config, [f for f in changed if f in FIELDS])
        if bucket._changes:
            retry.call(lambda: bucket.patch(retry=None), what, permission="storage.buckets.update")
        self._record(res, bucket._properties)

    def delete(self, name: str, observed: Observed) -> None:
        from google.api_core import exceptions

        what = f"bucket {name}"
        if name == self.records.artifacts:
            raise BackendError(f"{what} holds funnelops' ledger, leases and artifacts; it is not deleted",
                               "delete it by hand once the project is gone")
        self.storage.empty_bucket(name)
        try:
            retry.call(lambda: self.clients.storage.bucket(name).delete(retry=None), what,
                       permission="storage.buckets.delete", raw=True)
        except exceptions.NotFound:
            pass
        except Exception as exc:
            raise retry.describe(exc, what, "storage.buckets.delete") from None
        self.records.delete(name)
