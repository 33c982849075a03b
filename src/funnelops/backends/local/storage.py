"""Buckets on the local backend: a bucket is a folder under `<home>/buckets/`.

The bucket's settings (location, storage class, labels, lifecycle rules) live in a
`.bucket.json` beside its objects, as GCS keeps metadata with the bucket. A folder without that
file was not made by funnelops and is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from collections.abc import Iterable

from funnelops.backends.base import Observed
from funnelops.errors import BackendError
from funnelops.resources import Resource

META = ".bucket.json"
# Settings that only mean something on GCS; a folder recorded before funnelops knew them is read
# with the spec's defaults, so plans on existing local homes stay no-ops.
SETTING_DEFAULTS = {"uniform_bucket_level_access": True, "public_access_prevention": "enforced",
                    "versioning": False}


class LocalStorage:
    """Objects in local buckets."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def bucket_path(self, bucket: str) -> Path:
        return self.root / bucket

    def has_objects(self, bucket: str, prefix: str, suffix: str = "") -> bool:
        base = self.bucket_path(bucket) / prefix if prefix else self.bucket_path(bucket)
        if not base.is_dir():
            return False
        for _dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "_"))]
            if any(f.endswith(suffix) and not f.startswith((".", "_")) for f in filenames):
                return True
        return False

    def list_objects(self, bucket: str, prefix: str) -> list[str]:
        root = self.bucket_path(bucket)
        base = root / prefix if prefix else root
        if not base.exists():
            return []
        out = []
        for dirpath, _dirs, filenames in os.walk(base):
            for f in filenames:
                if f == META:
                    continue
                out.append(str((Path(dirpath) / f).relative_to(root)))
        return sorted(out)


    def _object_path(self, bucket: str, name: str) -> Path:
        root = self.bucket_path(bucket)
        path = root / name
        if not name or name.startswith("/") or ".." in Path(name).parts or path.name == META:
            raise BackendError(f"object name {name!r} is not a path inside bucket {bucket}")
        return path

    def read_object(self, bucket: str, name: str) -> bytes | None:
        path = self._object_path(bucket, name)
        try:
            return path.read_bytes() if path.is_file() and not path.is_symlink() else None
        except OSError as exc:
            raise BackendError(f"cannot read {path}: {exc.strerror or exc}") from None

    def put_object(self, bucket: str, name: str, data: bytes) -> None:
        path = self._object_path(bucket, name)
        if not self.bucket_path(bucket).is_dir():
            raise BackendError(f"bucket folder {self.bucket_path(bucket)} does not exist",
                               "create the project's infrastructure first (the IaC stage)")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic: a reader (a run) sees the old file or the new one
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise BackendError(f"cannot write {path}: {exc.strerror or exc}") from None


class BucketHandler:
    kind = "bucket"

    def __init__(self, storage: LocalStorage) -> None:
        self.storage = storage

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        out: dict[str, Observed] = {}
        root = self.storage.root
        if not root.is_dir():
            return out
        for entry in os.scandir(root):
            meta = Path(entry.path) / META
            if not entry.is_dir() or not meta.is_file():
                continue
            try:
                cfg = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                cfg = {"location": "(unreadable .bucket.json)"}
            if isinstance(cfg, dict) and "storage_class" in cfg:
                cfg = {**SETTING_DEFAULTS, **cfg}
            has_data = self.storage.has_objects(entry.name, "")
            out[entry.name] = Observed(cfg, rows=1 if has_data else 0)
        return out

    def _write_meta(self, res: Resource) -> None:
        path = self.storage.bucket_path(res.name)
        path.mkdir(parents=True, exist_ok=True)
        tmp = path / (META + ".tmp")
        tmp.write_text(json.dumps(res.config, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path / META)  # atomic: a crash leaves the old or the new settings

    def create(self, res: Resource) -> None:
        self._write_meta(res)

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        self._write_meta(res)

    def delete(self, name: str, observed: Observed) -> None:
        path = self.storage.bucket_path(name)
        try:
            shutil.rmtree(path)
        except OSError as exc:
            raise BackendError(f"cannot delete bucket folder {path}: {exc}") from None


class NoArtifacts:
    """The ``artifacts`` kind on the local backend: there are none (runs read the project folder),
    so it observes nothing and is never asked to make any (`owned_resources` is empty)."""

    kind = "artifacts"

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        return {}

    def create(self, res: Resource) -> None:
        raise BackendError(f"the local backend keeps no artifacts ({res.address})",
                           "artifacts are planned by the gcp backend only")

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        self.create(res)

    def delete(self, name: str, observed: Observed) -> None:
        """Nothing to delete: nothing is ever observed."""
