"""The cluster's Python dependencies: a wheelhouse and the initialization action that installs it.

A stock Dataproc 2.2 image has Python 3.11 and PySpark 3.5 but not what the flows import
(pydantic, PyYAML, croniter, sqlglot, python-calamine, the storage and BigQuery clients), and its
cluster has no internet (2.2 clusters are internal-IP-only by default). So funnelops ships a
pinned requirement set (``cluster/requirements.txt``, the whole closure with ``==`` pins),
downloads cp311 manylinux wheels of it here (where PyPI is reachable), uploads them to the
artifacts bucket, and the template's initialization action installs them with ``--no-index``
into ``/opt/funnelops/site``, which the launcher puts first on ``sys.path``.

Everything is keyed by the hash of the requirement text: the wheelhouse and the init action live
under that hash, so a changed set is a new object (never a half-replaced one), and the template
body (which names the init action) is computable offline. ``FUNNELOPS_WHEELHOUSE_DIR`` points at
a prebuilt folder (``requirements.txt`` + wheels) instead: for tests, and for teams that build
the wheelhouse elsewhere.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from funnelops.errors import BackendError

REQUIREMENTS = Path(__file__).parent / "cluster" / "requirements.txt"
ENV_DIR = "FUNNELOPS_WHEELHOUSE_DIR"
SITE = "/opt/funnelops/site"
CLUSTER_PYTHON = "/opt/conda/default/bin/python"
# Debian 12 has glibc 2.36: pip expands manylinux_2_36 down to every older manylinux tag.
PLATFORMS = ("manylinux_2_36_x86_64", "manylinux2014_x86_64")
PYTHON_VERSION = "3.11"
INIT_TIMEOUT = "600s"


def requirements_text() -> bytes:
    """The requirement set the cluster gets: the prebuilt wheelhouse's, else the packaged one."""
    override = os.environ.get(ENV_DIR, "").strip()
    path = Path(override) / "requirements.txt" if override else REQUIREMENTS
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BackendError(f"cannot read the cluster requirement set {path}: {exc.strerror or exc}",
                           f"{ENV_DIR} must name a folder holding requirements.txt and its wheels") from None


def requirements_hash(text: bytes | None = None) -> str:
    """Short content hash of the requirement set: names the wheelhouse and the init action."""
    return hashlib.sha256(requirements_text() if text is None else text).hexdigest()[:16]


def download_command(requirements: Path, dest: Path) -> list[str]:
    """The pip command that fetches cp311 manylinux wheels of the whole set (nothing built)."""
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
           "--python-version", PYTHON_VERSION, "--implementation", "cp", "--abi", "cp311", "--abi", "abi3",
           "--abi", "none"]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    return cmd + ["-r", str(requirements), "-d", str(dest)]


@dataclass(frozen=True)
class Wheelhouse:
    """A folder holding ``requirements.txt`` and the wheels that satisfy it."""

    path: Path
    digest: str

    def files(self) -> dict[str, Path]:
        """File name -> path; ``requirements.txt`` last, so an upload in this order leaves it as the
        marker that the wheels before it are all there."""
        wheels = {p.name: p for p in sorted(self.path.glob("*.whl"))}
        return {**wheels, "requirements.txt": self.path / "requirements.txt"}


def cache_root(home: Path | None) -> Path:
    base = Path(home) if home is not None else Path.home() / ".cache" / "funnelops"
    return base / "cache" / "wheelhouse"


def build(home: Path | None) -> Wheelhouse:
    """The wheelhouse for the cluster: the prebuilt folder, or one downloaded once per requirement
    hash into the funnelops home (a second apply reuses it; nothing is downloaded on the cluster)."""
    text = requirements_text()
    digest = requirements_hash(text)
    override = os.environ.get(ENV_DIR, "").strip()
    if override:
        return Wheelhouse(Path(override), digest)
    final = cache_root(home) / digest
    if (final / "requirements.txt").is_file():
        return Wheelhouse(final, digest)
    partial = final.with_name(digest + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    (partial / "requirements.txt").write_bytes(text)
    cmd = download_command(partial / "requirements.txt", partial)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BackendError("could not download the cluster's wheelhouse from PyPI: " + " / ".join(tail),
                           "run where PyPI is reachable, or build it yourself and set "
                           f"{ENV_DIR} to the folder: {' '.join(cmd)}")
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)  # the rename is the commit: a half download is never used
    return Wheelhouse(final, digest)


INIT_ACTION = '''#!/usr/bin/env bash
# funnelops initialization action (generated; do not edit): installs the flows' Python
# dependencies from the wheelhouse in the artifacts bucket, with --no-index (no internet needed).
set -euo pipefail
WHEELHOUSE="${{FUNNELOPS_WHEELHOUSE_URI:-{uri}}}"
PYTHON="${{FUNNELOPS_CLUSTER_PYTHON:-{python}}}"
SITE="${{FUNNELOPS_SITE:-{site}}}"
LOCAL="$(mktemp -d "${{TMPDIR:-/tmp}}/funnelops-wheelhouse.XXXXXX")"
trap 'rm -rf "$LOCAL" "$SITE.partial"' EXIT
if command -v gsutil >/dev/null 2>&1; then
  gsutil -q cp "$WHEELHOUSE/*" "$LOCAL/"
else
  gcloud storage cp "$WHEELHOUSE/*" "$LOCAL/"
fi
test -f "$LOCAL/requirements.txt" || {{ echo "funnelops: no requirements.txt in $WHEELHOUSE" >&2; exit 1; }}
rm -rf "$SITE.partial"
"$PYTHON" -m pip install --disable-pip-version-check --no-cache-dir --no-index --find-links "$LOCAL" \\
  --target "$SITE.partial" -r "$LOCAL/requirements.txt"
rm -rf "$SITE"
mv "$SITE.partial" "$SITE"
echo "funnelops: installed the wheelhouse {digest} into $SITE"
'''


def init_action(wheelhouse_uri: str, digest: str) -> bytes:
    """The initialization action's script for the wheelhouse at `wheelhouse_uri` (a gs:// folder)."""
    return INIT_ACTION.format(uri=wheelhouse_uri.rstrip("/"), python=CLUSTER_PYTHON, site=SITE,
                              digest=digest).encode()
