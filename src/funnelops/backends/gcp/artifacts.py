"""What Dataproc runs: launchers, the funnelops zip (package + project), the project file, and the
cluster's dependencies (a wheelhouse plus the initialization action that installs it).

Templates reference stable URIs under ``gs://<artifacts>/funnelops/artifacts/``; each object
carries the sha256 of its content in its metadata. The artifacts are one planned resource
(kind ``artifacts``, named after the bucket) whose config is {object name: sha256}: ``plan``
compares it with the hashes found in GCS, so a changed flow or SQL file shows as a change, and
``apply`` uploads what differs. A changed object replaces its object in place, which every
template picks up at its next run without a template update; every start verifies the hashes
first (:meth:`Artifacts.verify`). The zip is built byte-for-byte reproducibly (sorted entries,
fixed timestamps), so its hash only moves when content does. The wheelhouse is keyed by the hash
of its requirement set (:mod:`.wheelhouse`): only its ``requirements.txt``, uploaded after the
wheels, stands for it in the config.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from pathlib import Path
from typing import Any

from collections.abc import Callable, Iterable

from funnelops.backends.base import Observed
from funnelops.backends.gcp import retry, wheelhouse
from funnelops.backends.gcp.clients import Clients
from funnelops.errors import BackendError
from funnelops.resources import Resource

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

# The flows' dependencies, installed by the initialization action from the wheelhouse: first on
# the path, so the pinned versions win over whatever the image carries.
_SITE = os.environ.get("FUNNELOPS_SITE") or "/opt/funnelops/site"
if os.path.isdir(_SITE) and _SITE not in sys.path:
    sys.path.insert(0, _SITE)


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


def project_bytes(loaded: Any) -> bytes:
    """The project file the flows read on Dataproc. A file with `environments:` or `${VAR}` is shipped
    as the document this deployment resolved (the environment's overlay merged, variables replaced;
    JSON, which YAML 1.2 reads as is): the cluster has neither the --env nor the pipeline's variables."""
    raw = loaded.path.read_bytes()
    if not getattr(loaded, "env", None) and not getattr(loaded, "environments", ()) and b"${" not in raw:
        return raw
    return (json.dumps(loaded.document, ensure_ascii=False, indent=1, sort_keys=False) + "\n").encode()


def bootstraps(workflow: Any) -> bool:
    """Whether a workflow's cluster installs the wheelhouse (``placement.bootstrap: none``: the team
    bakes the dependencies into a custom image)."""
    return getattr(workflow.placement, "bootstrap", "wheelhouse") != "none"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Artifacts:
    def __init__(self, clients: Clients, bucket: str, loaded: Any | None, home: Path | None = None) -> None:
        self.clients = clients
        self.bucket = bucket
        self.loaded = loaded
        self.home = home
        self._lock = threading.Lock()
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

    @staticmethod
    def init_name(digest: str) -> str:
        return f"init-{digest}.sh"

    @staticmethod
    def wheelhouse_dir(digest: str) -> str:
        return f"wheelhouse/{digest}/"

    def init_actions(self) -> list[dict[str, str]]:
        """The template's ``config.initializationActions``: install the wheelhouse on every node."""
        digest = wheelhouse.requirements_hash()
        return [{"executableFile": self.base + self.init_name(digest), "executionTimeout": wheelhouse.INIT_TIMEOUT}]

    @property
    def needs_wheelhouse(self) -> bool:
        return self.loaded is None or any(bootstraps(w) for w in self.loaded.spec.workflows)

    # -- content ----------------------------------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """Object name (under PREFIX) -> bytes, for everything but the wheels themselves."""
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
            out[f"project/{project_file}"] = project_bytes(self.loaded)
            content[f"{PROJECT_DIR}/{project_file}"] = out[f"project/{project_file}"]
        out[ZIP] = _zip(content)
        for main in sorted(mains):
            out[f"mains/{main}.py"] = LAUNCHER.format(main=main, zip=ZIP, pdir=PROJECT_DIR,
                                                      project_file=project_file).encode()
        if self.needs_wheelhouse:
            text = wheelhouse.requirements_text()
            digest = wheelhouse.requirements_hash(text)
            out[self.init_name(digest)] = wheelhouse.init_action(self.base + self.wheelhouse_dir(digest), digest)
            out[self.wheelhouse_dir(digest) + "requirements.txt"] = text  # the wheelhouse's marker
        return out

    def desired(self) -> dict[str, str]:
        """The artifacts resource's config: object name (under PREFIX) -> sha256 of its content."""
        return {name: sha256(data) for name, data in sorted(self.files().items())}

    def observed(self, names: Iterable[str] | None = None) -> dict[str, str]:
        """The hashes the uploaded objects carry (of `names` only, when given): one list call."""
        storage = self.clients.storage
        found = {b.name[len(PREFIX):]: (b.metadata or {}).get(HASH_KEY) for b in retry.call(
            lambda: list(storage.list_blobs(self.bucket, prefix=PREFIX, retry=None)),
            f"gs://{self.bucket}/{PREFIX}", permission="storage.objects.list")}
        wanted = set(found) if names is None else set(names)
        return {n: h for n, h in sorted(found.items()) if n in wanted and h}

    def stale(self) -> list[str]:
        """Object names whose uploaded content differs from what this project would upload now."""
        want = self.desired()
        have = self.observed(want)
        return [n for n, h in want.items() if have.get(n) != h]

    def verify(self, workflow: str) -> None:
        """Refuse to start `workflow` on artifacts other than the project's: the cluster would run
        old code (or find no dependencies) while `plan` and the user believe otherwise."""
        stale = self.stale()
        if stale:
            shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
            raise BackendError(f"refusing to start {workflow}: the artifacts in {self.base} differ from the "
                               f"project ({shown})",
                               "run the create-infra job again (`funnelops job create-infra --stage <current stage>`; "
                               "`funnelops plan` shows the change) to upload them, then start again")

    # -- upload -----------------------------------------------------------------------------------
    def _put(self, name: str, data: bytes | Path, digest: str) -> None:
        blob = self.clients.storage.bucket(self.bucket).blob(PREFIX + name)
        blob.metadata = {HASH_KEY: digest}
        ctype = {".zip": "application/zip", ".whl": "application/zip"}.get(Path(name).suffix, "text/plain")
        if isinstance(data, Path):
            send = lambda: blob.upload_from_filename(str(data), content_type=ctype, retry=None)
        else:
            send = lambda: blob.upload_from_string(data, content_type=ctype, retry=None)
        retry.call(send, f"gs://{self.bucket}/{PREFIX}{name}", permission="storage.objects.create")
        self.uploaded.append(PREFIX + name)

    def wheelhouse_objects(self) -> dict[str, Path]:
        """The wheelhouse's objects (name under PREFIX -> local file), built or taken from the
        cache; ``requirements.txt`` last. What `ensure` uploads and the cluster-side test installs."""
        house = wheelhouse.build(self.home)
        folder = self.wheelhouse_dir(house.digest)
        return {folder + fname: path for fname, path in house.files().items()}

    def _upload_wheelhouse(self, have: dict[str, str]) -> None:
        for name, path in self.wheelhouse_objects().items():  # requirements.txt last: the marker
            digest = sha256(path.read_bytes())
            if have.get(name) != digest:
                self._put(name, path, digest)

    def ensure(self) -> list[str]:
        """Upload what differs from the project; returns the object names uploaded."""
        with self._lock:
            self.uploaded = []
            files = self.files()
            have = self.observed()
            marker = next((n for n in files if n.startswith("wheelhouse/")), None)
            for name, data in files.items():
                digest = sha256(data)
                if name == marker:
                    if have.get(name) != digest:
                        self._upload_wheelhouse(have)
                    continue
                if have.get(name) != digest:
                    self._put(name, data, digest)
            return list(self.uploaded)


    def remove_all(self) -> None:
        from google.api_core import exceptions

        storage = self.clients.storage
        names = [b.name for b in retry.call(lambda: list(storage.list_blobs(self.bucket, prefix=PREFIX, retry=None)),
                                            f"gs://{self.bucket}/{PREFIX}", permission="storage.objects.list")]
        for name in names:
            blob = storage.bucket(self.bucket).blob(name)
            try:
                retry.call(lambda: blob.delete(retry=None), f"gs://{self.bucket}/{name}",  # noqa: B023 (called in this iteration)
                           permission="storage.objects.delete", raw=True)
            except exceptions.NotFound:
                pass
            except Exception as exc:
                raise retry.describe(exc, f"gs://{self.bucket}/{name}", "storage.objects.delete") from None


class ArtifactsHandler:
    """The ``artifacts`` resource kind: one per project (named after its bucket), diffed by hash."""

    kind = "artifacts"

    def __init__(self, artifacts: Artifacts, before_write: Callable[[], object]) -> None:
        self.artifacts = artifacts
        self.before_write = before_write  # makes the artifacts bucket if it is missing

    def resource(self) -> Resource:
        return Resource(self.kind, self.artifacts.bucket, self.artifacts.desired(),
                        (f"bucket.{self.artifacts.bucket}",))

    def observe(self, names: Iterable[str]) -> dict[str, Observed]:
        if self.artifacts.bucket not in set(names):
            return {}
        try:
            have = self.artifacts.observed(self.artifacts.desired())
        except BackendError as exc:  # no bucket yet: nothing uploaded
            if exc.details.get("status") == 404:
                return {}
            raise
        return {self.artifacts.bucket: Observed(have)} if have else {}

    def create(self, res: Resource) -> None:
        self.before_write()
        self.artifacts.ensure()

    def update(self, res: Resource, observed: Observed, changed: list[str]) -> None:
        self.create(res)

    def delete(self, name: str, observed: Observed) -> None:
        """`destroy`: remove every object under the artifacts prefix (the bucket itself, which also
        holds the ledger and the leases, is the bucket resource's business)."""
        self.artifacts.remove_all()
