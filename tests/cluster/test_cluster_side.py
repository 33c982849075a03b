"""The cluster side of the gcp backend: what a Dataproc 2.2 node would run, run here.

The artifacts are built by the gcp backend's own code (``Artifacts.files`` and
``Artifacts.wheelhouse_objects``: what ``apply`` uploads) and laid out in a folder standing for
the artifacts bucket. A FRESH virtualenv of Python 3.11 holding only PySpark 3.5 and py4j stands
for the stock image. The template's initialization action (its own script, with a ``gsutil`` shim
that copies from that folder) installs the wheelhouse with ``--no-index``; then the template's main
program (the launcher) runs through ``spark-submit`` with the template's ``pythonFileUris`` and
args, against a folder of raw data standing for the buckets. It must run every trusted flow, under
the workflow's GCS lease (the run tail's `--lease=scheduled`: the program takes the lease in the
artifacts bucket on fake-gcs, through the wheelhouse's google-cloud-storage, and releases it).

The virtualenv and the wheelhouse are cached under ``$FUNNELOPS_TEST_CACHE`` (default
``~/.cache/funnelops-tests``), keyed by the Python and the requirement set, so a rerun skips the
download; the init action and the run itself happen every time.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

pytestmark = [pytest.mark.spark, pytest.mark.cluster]
pyspark = pytest.importorskip("pyspark")
pytest.importorskip("google.cloud.dataproc_v1")
if shutil.which("java") is None:
    pytest.skip("Java is not installed", allow_module_level=True)

from funnelops.backends.gcp import GcpBackend, wheelhouse  # noqa: E402
from funnelops.backends.gcp.artifacts import PREFIX  # noqa: E402
from funnelops.flows import registry  # noqa: E402
from funnelops.resources import desired_resources  # noqa: E402
from funnelops.spec.loader import load_project  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ROOT / "projects" / "funnel" / "funnel.yaml"
DAY = "2024-03-05"

GSUTIL = '''#!{python}
"""gsutil shim for the cluster-side test: `gsutil [-m] [-q] cp gs://B/P/* DEST` from a local folder."""
import glob, os, shutil, sys
args = [a for a in sys.argv[1:] if not a.startswith("-")]
assert args[0] == "cp" and len(args) == 3, sys.argv
src, dest = args[1], args[2]
assert src.startswith("gs://"), src
matches = glob.glob(os.path.join(os.environ["FAKE_GCS_ROOT"], src[len("gs://"):]))
if not matches:
    sys.exit("CommandException: No URLs matched: " + src)
for m in matches:
    shutil.copy(m, dest)
'''


def _python311() -> str:
    for cand in (Path(sys.base_prefix) / "bin" / "python3.11", shutil.which("python3.11")):
        if cand and Path(cand).exists():
            return str(cand)
    pytest.skip("no Python 3.11 to make the image's virtualenv with")


@pytest.fixture(scope="session")
def cache() -> Path:
    root = Path(os.environ.get("FUNNELOPS_TEST_CACHE") or Path.home() / ".cache" / "funnelops-tests") / "cluster"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def image_python(cache: Path) -> Path:
    """A fresh Python 3.11 virtualenv with only PySpark and py4j (linked from this environment's):
    what a stock Dataproc 2.2 image offers the job, minus everything else the image carries."""
    import py4j

    venv = cache / f"image-py311-pyspark{pyspark.__version__}"
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / ".ready").exists():
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([_python311(), "-m", "venv", str(venv)], check=True, timeout=300)
            [site] = (venv / "lib").glob("python3.11/site-packages")
            for mod in (pyspark, py4j):
                pkg = Path(mod.__file__).parent
                (site / pkg.name).symlink_to(pkg, target_is_directory=True)
            (venv / ".ready").touch()
    return venv / "bin" / "python"


@pytest.fixture
def raw_buckets(tmp_path: Path) -> Path:
    """The buckets folder: the example project's raw data for March 2024."""
    from funnelops.lifecycle.sample_data import load_generator

    loaded = load_project(PROJECT)
    root = tmp_path / "buckets"
    raw = root / loaded.spec.bucket_for("raw").name
    raw.mkdir(parents=True)
    load_generator(loaded).generate(raw, 20000, date(2024, 3, 1), date(2024, 3, 31), 7)
    return root


def _lay_out_artifacts(backend: GcpBackend, gcs: Path) -> None:
    """Write the objects exactly as `apply` uploads them, under <gcs>/<bucket>/funnelops/artifacts/."""
    dest = gcs / backend.artifacts.bucket / PREFIX
    for name, data in backend.artifacts.files().items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_bytes(data)
    for name, path in backend.artifacts.wheelhouse_objects().items():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest / name)


def _local(uri: str, gcs: Path) -> Path:
    assert uri.startswith("gs://"), uri
    return gcs / uri[len("gs://"):]


def _clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH (the test's own source tree must not leak in) and no funnelops settings."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith(("FUNNELOPS_", "PYSPARK_"))}
    return {**env, **extra}


def test_the_template_runs_every_trusted_flow_on_a_stock_image(tmp_path, monkeypatch, cache, image_python,
                                                              raw_buckets, fake_gcs, gcp_double):
    t0 = time.perf_counter()
    monkeypatch.delenv(wheelhouse.ENV_DIR, raising=False)  # the real wheelhouse, from PyPI (cached)
    loaded = load_project(PROJECT)
    backend = GcpBackend.for_project(loaded, cache / "home")  # clients are lazy: nothing is called
    gcs = tmp_path / "gcs"
    _lay_out_artifacts(backend, gcs)
    fake_gcs.client.create_bucket(backend.artifacts.bucket)  # where the run's lease lives
    t_built = time.perf_counter()
    res = next(r for r in desired_resources(loaded, "workflow") if r.address == "workflow_template.funnel-dia")
    body = backend.handler("workflow_template").body(res)
    actions = body["placement"]["managedCluster"]["config"]["initializationActions"]
    [job] = body["jobs"]
    pyspark_job = job["pysparkJob"]

    # 1. The initialization action, as a node runs it at cluster creation.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "gsutil").write_text(GSUTIL.format(python=sys.executable))
    (shim / "gsutil").chmod(0o755)
    site = tmp_path / "node" / "site"
    for action in actions:
        script = _local(action["executableFile"], gcs)
        out = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600,
                             env=_clean_env(PATH=f"{shim}{os.pathsep}{os.environ['PATH']}", FAKE_GCS_ROOT=str(gcs),
                                            FUNNELOPS_CLUSTER_PYTHON=str(image_python), FUNNELOPS_SITE=str(site),
                                            PIP_NO_INDEX="1"))
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    t_init = time.perf_counter()

    # 2. The template's main program, submitted as Dataproc submits a PySpark job.
    spark_home = Path(pyspark.__file__).parent
    metrics = tmp_path / "metrics.json"
    py_files = ",".join(str(_local(u, gcs)) for u in pyspark_job.get("pythonFileUris", []))
    args = list(pyspark_job["args"]) + [f"--period={DAY}", "--refined_flows=false"]
    cmd = ["bash", str(spark_home / "bin" / "spark-submit"), "--master", "local[1]",
           "--conf", "spark.ui.enabled=false", "--py-files", py_files,
           str(_local(pyspark_job["mainPythonFileUri"], gcs)), *args]
    work = tmp_path / "driver"
    work.mkdir()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=work,
                         env=_clean_env(SPARK_HOME=str(spark_home), PYSPARK_PYTHON=str(image_python),
                                        PYSPARK_DRIVER_PYTHON=str(image_python), FUNNELOPS_SITE=str(site),
                                        FUNNELOPS_BUCKETS_URI=raw_buckets.as_uri(),
                                        FUNNELOPS_STORAGE_ENDPOINT=fake_gcs.url, FUNNELOPS_CLUSTER_NAME="funnel-x1",
                                        FUNNELOPS_DATAPROC_ENDPOINT=gcp_double.url,
                                        FUNNELOPS_METRICS_FILE=str(metrics)))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    ran = json.loads(metrics.read_text())
    assert ran["ok"], ran
    expected = sorted(registry.trusted_names(loaded.base_dir))
    assert sorted(f["flow"] for f in ran["flows"] if f["layer"] == "trusted") == expected
    assert not [f for f in ran["flows"] if f["layer"] != "trusted"]
    trusted = raw_buckets / loaded.spec.bucket_for("trusted").name
    kept = {f["flow"]: f["kept"] for f in ran["flows"]}
    assert sum(1 for n in kept.values() if n) >= 4, ran["flows"]  # a quiet day may close no deal
    for flow in expected:
        if kept[flow]:
            assert any((trusted / flow).rglob("*.parquet")), f"no parquet written for {flow}: {ran['flows']}"
    # The program worked under the workflow's lease and gave it back (one flows step: it releases).
    assert fake_gcs.proxy.requests("objects.insert"), "no lease was taken"
    assert fake_gcs.proxy.requests("objects.delete"), "the lease was not released"
    # ... and looked for its own operation with the wheelhouse's Dataproc client (none here: no workflow ran).
    assert gcp_double.count("operations.list"), gcp_double.calls()
    assert not list(fake_gcs.client.list_blobs(backend.artifacts.bucket, prefix="funnelops/leases/"))
    print(f"\ncluster-side: artifacts {t_built - t0:.1f}s, init action {t_init - t_built:.1f}s, "
          f"run {time.perf_counter() - t_init:.1f}s")
