"""What Dataproc runs: launchers, the funnelops zip (package + project) and the project file.

Templates reference stable URIs under ``gs://<artifacts>/funnelops/artifacts/``; each object
carries the sha256 of its content in its metadata, so an unchanged artifact is never uploaded
again (one ``objects.list`` decides) and a changed one replaces its object in place, which every
template picks up at its next run without a template update. The zip is built byte-for-byte
reproducibly (sorted entries, fixed timestamps), so its hash only moves when content does.
"""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from pathlib import Path
from typing import Any

from funnelops.backends.gcp import retry
from funnelops.backends.gcp.clients import Clients

PREFIX = "funnelops/artifacts/"
ZIP = "funnelops.zip"
PROJECT_DIR = "funnelops_project"
HASH_KEY = "funnelops-sha256"
_PROJECT_EXT = {".py", ".sql", ".json", ".yaml", ".yml"}

LAUNCHER = '''"""funnelops launcher: run `{main}` from funnelops.zip on Dataproc (generated; do not edit)."""
import os
import runpy
import sys
import tempfile
import zipfile


def _unpack_project():
    """The project definition travels inside the zip; flows find it through FUNNELOPS_PROJECT."""
    if os.environ.get("FUNNELOPS_PROJECT"):
        return
    for entry in sys.path:
        if entry.endswith("{zip}") and os.path.isfile(entry):
            target = tempfile.mkdtemp(prefix="funnelops-project-")
            with zipfile.ZipFile(entry) as zf:
                zf.extractall(target, [n for n in zf.namelist() if n.startswith("{pdir}/")])
            os.environ["FUNNELOPS_PROJECT"] = os.path.join(target, "{pdir}", "{project_file}")
            return


_unpack_project()
# On Dataproc the flows take the gcp path: Spark over gs:// for trusted, BigQuery for refined
# (funnelops.backends.gcp.flows_runtime); set here, not in the templates, so every template gets it.
os.environ.setdefault("FUNNELOPS_BACKEND", "gcp")
os.environ.setdefault("FUNNELOPS_ENGINE", "spark")
MAIN = {main!r}
if MAIN.endswith(".py"):  # a file of the project: only inside the unpacked project folder
    base = os.path.realpath(os.path.dirname(os.environ["FUNNELOPS_PROJECT"]))
    path = os.path.realpath(os.path.join(base, MAIN))
    if not path.startswith(base + os.sep) or not os.path.isfile(path):
        sys.exit("funnelops launcher: main " + MAIN + " is not a file inside the project folder")
    sys.argv[0] = path
    runpy.run_path(path, run_name="__main__")
else:
    runpy.run_module(MAIN, run_name="__main__", alter_sys=True)
'''


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, files[name])
    return buf.getvalue()


def _tree(root: Path, under: str, keep) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or any(p.startswith((".", "__pycache__")) for p in rel.parts) or not keep(rel):
            continue
        out[f"{under}/{rel.as_posix()}"] = path.read_bytes()
    return out


class Artifacts:
    def __init__(self, clients: Clients, bucket: str, loaded: Any | None) -> None:
        self.clients = clients
        self.bucket = bucket
        self.loaded = loaded
        self._lock = threading.Lock()
        self._done = False
        self.uploaded: list[str] = []

    # -- URIs (what templates reference) ------------------------------------------------------
    @property
    def base(self) -> str:
        return f"gs://{self.bucket}/{PREFIX}"

    def main_uri(self, main: str) -> str:
        return f"{self.base}mains/{main}.py"

    def main_name(self, uri: str) -> str:
        head = f"{self.base}mains/"
        return uri[len(head):-3] if uri.startswith(head) and uri.endswith(".py") else uri

    @property
    def python_file_uris(self) -> list[str]:
        return [self.base + ZIP]

    # -- content ----------------------------------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """Object name (under PREFIX) -> bytes."""
        import funnelops

        pkg = Path(funnelops.__file__).parent
        content = _tree(pkg, "funnelops", lambda rel: rel.suffix == ".py" and rel.parts[0] != "testing")
        project_file = "funnel.yaml"
        mains = {"funnelops.flows"}
        out: dict[str, bytes] = {}
        if self.loaded is not None:
            base = self.loaded.base_dir
            project_file = self.loaded.path.name
            content.update(_tree(base, PROJECT_DIR, lambda rel: rel.suffix in _PROJECT_EXT))
            mains |= {j.main for w in self.loaded.spec.workflows for j in w.jobs}
            out[f"project/{project_file}"] = self.loaded.path.read_bytes()
        out[ZIP] = _zip(content)
        for main in sorted(mains):
            out[f"mains/{main}.py"] = LAUNCHER.format(main=main, zip=ZIP, pdir=PROJECT_DIR,
                                                      project_file=project_file).encode()
        return out

    def ensure(self) -> list[str]:
        """Upload what changed (once per process); returns the object names uploaded."""
        with self._lock:
            if self._done:
                return []
            files = self.files()
            storage = self.clients.storage
            have = {b.name: (b.metadata or {}).get(HASH_KEY) for b in retry.call(
                lambda: list(storage.list_blobs(self.bucket, prefix=PREFIX, retry=None)),
                f"gs://{self.bucket}/{PREFIX}", permission="storage.objects.list")}
            bucket = storage.bucket(self.bucket)
            for name, data in files.items():
                digest = hashlib.sha256(data).hexdigest()
                if have.get(PREFIX + name) == digest:
                    continue
                blob = bucket.blob(PREFIX + name)
                blob.metadata = {HASH_KEY: digest}
                ctype = "application/zip" if name.endswith(".zip") else "text/plain"
                retry.call(lambda: blob.upload_from_string(data, content_type=ctype, retry=None),  # noqa: B023 (called in this iteration)
                           f"gs://{self.bucket}/{PREFIX}{name}", permission="storage.objects.create")
                self.uploaded.append(PREFIX + name)
            self._done = True
            return list(self.uploaded)
