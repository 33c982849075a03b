"""Damaged, missing and read-only state files, and two applies at once, through the real CLI.

Each test starts from a copy of one home that went through IaC (made once per module by the real
`funnelops job create-infra`), damages it the way disks and people do, and checks that funnelops
names the file and the way back instead of re-initialising, reporting "unchanged", or crashing.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
FUNNEL = REPO / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))


def _env(project: Path, home: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, FUNNELOPS_PROJECT=str(project), FUNNELOPS_HOME=str(home), NO_COLOR="1",
                COLUMNS="200", **extra)


def cli(project: Path, home: Path, *args: str, code: int | None = 0, prefix: tuple[str, ...] = (),
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([*prefix, FUNNELOPS, *args], env=env or _env(project, home), capture_output=True,
                          text=True, timeout=120)
    if code is not None:
        assert proc.returncode == code, (f"funnelops {' '.join(args)}: exit {proc.returncode}, expected {code}\n"
                                         f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[Path, Path]:
    """A project copy and a home after IaC, shared read-only by the tests (they copy the home)."""
    root = tmp_path_factory.mktemp("corrupt")
    shutil.copytree(FUNNEL, root / "project", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    project = root / "project" / "funnel.yaml"
    cli(project, root / "home", "job", "create-infra", "--stage", "IaC")
    return project, root / "home"


@pytest.fixture
def home(base, tmp_path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(base[1], target)
    return target


def _error(proc: subprocess.CompletedProcess) -> dict:
    """The --json error document (stdout carries exactly one)."""
    return json.loads(proc.stdout)


# -- the warehouse -----------------------------------------------------------------------------
def test_truncated_warehouse_is_named_not_unchanged(base, home):
    project = base[0]
    wh = home / "warehouse.duckdb"
    os.truncate(wh, wh.stat().st_size - 100_000)  # the catalog still reads; the last block is cut
    proc = cli(project, home, "--json", "plan", "--stage", "IaC", code=1)
    err = _error(proc)
    assert err["error"] == "corrupt_state"
    assert str(wh) in err["message"] and "truncated" in err["message"]
    assert "restore" in err["hint"] and "move it aside" in err["hint"] and "Initial data" in err["hint"]
    assert "unexpected" not in proc.stderr
    # an apply refuses too, before changing anything
    cli(project, home, "job", "create-infra", "--stage", "IaC", code=1)


def test_zero_byte_warehouse_is_named(base, home):
    (home / "warehouse.duckdb").write_bytes(b"")
    proc = cli(base[0], home, "plan", "--stage", "IaC", code=1)
    assert "warehouse" in proc.stderr and "is damaged" in proc.stderr and "Hint: recover" in proc.stderr


# -- the ledger --------------------------------------------------------------------------------
def test_zero_byte_ledger_beside_state_is_refused_until_reinit(base, home):
    project = base[0]
    ledger = home / "ledger.sqlite"
    ledger.write_bytes(b"")
    for args in (("status",), ("plan", "--stage", "IaC"), ("job", "create-infra", "--stage", "IaC")):
        err = _error(cli(project, home, "--json", *args, code=1))
        assert err["error"] == "corrupt_state", args
        assert str(ledger) in err["message"] and "empty" in err["message"]
        assert "--reinit" in err["hint"] and "run history" in err["hint"]
    assert ledger.stat().st_size == 0  # nothing was re-initialised behind the user's back
    cli(project, home, "--reinit", "job", "create-infra", "--stage", "IaC")
    assert len(list(home.glob("ledger.sqlite.damaged-*"))) == 1  # moved aside, not deleted
    status = json.loads(cli(project, home, "--json", "status").stdout)
    assert json.dumps(status).count("iac") >= 1
    cli(project, home, "job", "create-infra", "--stage", "IaC")  # and a plain run works again


def test_garbage_ledger_is_named_not_unexpected(base, home):
    ledger = home / "ledger.sqlite"
    ledger.write_bytes(os.urandom(8192))
    proc = cli(base[0], home, "status", code=1)
    assert f"the ledger {ledger} is damaged" in proc.stderr
    assert "unexpected" not in proc.stderr and "report it" not in proc.stderr


def test_ledger_damaged_inside_is_caught_by_the_integrity_check(base, home):
    ledger = home / "ledger.sqlite"
    data = bytearray(ledger.read_bytes())
    page = 4096
    assert len(data) > 4 * page
    data[2 * page:4 * page] = os.urandom(2 * page)  # the header is fine; b-tree pages are not
    ledger.write_bytes(bytes(data))
    proc = cli(base[0], home, "--json", "runs", code=1)
    err = _error(proc)
    assert err["error"] == "corrupt_state" and str(ledger) in err["message"]


def test_missing_ledger_beside_state_is_refused(base, home):
    (home / "ledger.sqlite").unlink()
    proc = cli(base[0], home, "status", code=1)
    assert "is missing but the home holds state" in proc.stderr and "--reinit" in proc.stderr
    assert not (home / "ledger.sqlite").exists()


def test_new_home_initialises_with_a_marker_and_foreign_sqlite_is_refused(base, tmp_path):
    project, home = base[0], tmp_path / "fresh"
    (home / "buckets" / "raw").mkdir(parents=True)  # sample data generated before IaC is no state
    (home / "buckets" / "raw" / "leads.csv").write_text("id\n1\n")
    cli(project, home, "job", "create-infra", "--stage", "IaC")
    con = sqlite3.connect(home / "ledger.sqlite")
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'ledger'").fetchone() == ("funnelops",)
        con.execute("DELETE FROM meta")  # a valid SQLite file that funnelops did not make
        con.commit()
        con.execute("DROP TABLE stages")
        con.commit()
    finally:
        con.close()
    proc = cli(project, home, "status", code=1)
    assert "not a funnelops ledger" in proc.stderr


def test_legacy_unmarked_ledger_is_accepted_and_marked(base, home):
    ledger = home / "ledger.sqlite"
    con = sqlite3.connect(ledger)
    try:
        con.execute("DELETE FROM meta")  # as written before the marker existed
        con.commit()
    finally:
        con.close()
    out = cli(base[0], home, "status").stdout
    assert "IaC" in out
    cli(base[0], home, "job", "create-infra", "--stage", "IaC")
    con = sqlite3.connect(ledger)
    try:
        assert con.execute("SELECT value FROM meta WHERE key = 'ledger'").fetchone() == ("funnelops",)
    finally:
        con.close()


# -- a read-only home --------------------------------------------------------------------------
def _as_other_user() -> tuple[str, ...] | None:
    """How to run the CLI as someone the permission bits apply to (root ignores them).

    Root with every capability dropped (no CAP_DAC_OVERRIDE) obeys the permission bits yet can
    still read the root-owned checkout and virtualenv, wherever the clone lives (a 0700 mktemp
    folder keeps other users out, so switching to `nobody` would fail for the wrong reason)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv:
        return (setpriv, "--bounding-set=-all", "--inh-caps=-all")
    return None


def _add_fake_run(home: Path) -> None:
    """A finished run with one step log, so `runs` and `logs` have something to show."""
    log_dir = home / "runs" / "1"
    log_dir.mkdir(parents=True)
    (log_dir / "flows.log").write_text("trusted leads read=3 kept=3\n")
    con = sqlite3.connect(home / "ledger.sqlite")
    try:
        con.execute("INSERT INTO runs (id, workflow, args, trigger, actor, state, created_at, started_at, ended_at, "
                    "steps, log_dir) VALUES (1, 'funnel-dia', '[]', 'manual', 'test', 'DONE', '2025-01-01T00:00:00+00:00', "
                    "'2025-01-01T00:00:00+00:00', '2025-01-01T00:00:01+00:00', ?, ?)",
                    (json.dumps([{"step_id": "flows", "state": "DONE"}]), str(log_dir)))
        con.commit()
    finally:
        con.close()


def test_read_only_home_reads_work_and_writes_say_read_only(base):
    prefix = _as_other_user()
    if prefix is None:
        pytest.skip("running as root without setpriv: no way to make the home read-only")
    # pytest's tmp dirs are private to root: this one must be readable by the other user
    root = Path(tempfile.mkdtemp(prefix="funnelops-ro-", dir="/tmp"))
    try:
        shutil.copytree(base[0].parent, root / "project")
        home = root / "home"
        shutil.copytree(base[1], home)
        _add_fake_run(home)
        project = root / "project" / "funnel.yaml"
        for p in [root, *root.rglob("*")]:
            mode = p.stat().st_mode
            p.chmod((mode | 0o444 | (0o111 if p.is_dir() else 0)) & ~0o222)
        env = _env(project, home, HOME=str(root))
        for args in (("status",), ("runs",), ("logs", "1"), ("plan", "--stage", "IaC"), ("validate",),
                     ("scheduler", "list")):
            proc = cli(project, home, *args, prefix=prefix, env=env)
            assert "unexpected" not in proc.stderr, (args, proc.stderr)
        assert "read=3 kept=3" in cli(project, home, "logs", "1", prefix=prefix, env=env).stdout
        for args in (("job", "create-infra", "--stage", "IaC"), ("scheduler", "pause", "dia")):
            proc = cli(project, home, "--json", *args, code=1, prefix=prefix, env=env)
            err = _error(proc)
            assert err["error"] == "read_only_home", (args, err)
            assert f"home {home} is read-only" in err["message"] and "read commands" in err["hint"]
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o700)
        shutil.rmtree(root, ignore_errors=True)


# -- two applies at once -----------------------------------------------------------------------
def test_concurrent_applies_on_an_empty_home_converge_or_refuse(base, tmp_path):
    """Two applies at once: each applies or is refused (exit 3, naming the other); never both
    apply over each other, and the home ends as one apply left it."""
    project = base[0]
    for attempt in range(2):
        home = tmp_path / f"h{attempt}"
        procs = [subprocess.Popen([FUNNELOPS, "--json", "job", "create-infra", "--stage", "IaC"],
                                  env=_env(project, home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes in ([0, 0], [0, 3]), (codes, outs)
        for p, (out, _) in zip(procs, outs):
            if p.returncode == 3:
                assert "an apply is in progress: `funnelops --json job create-infra --stage IaC`" in json.loads(out)["message"]
        if codes == [0, 0]:  # they did not overlap: the second planned after the first, all unchanged
            changes = [sum(c["action"] == "create" for c in json.loads(out)["plan"]["changes"]) for out, _ in outs]
            assert sorted(changes)[0] == 0, changes
        cli(project, home, "plan", "--stage", "IaC", "--detailed-exitcode")


def test_apply_refuses_at_once_while_another_apply_holds_the_lease(base, home):
    """Before issue 15 the second apply waited on a lock file; now it is refused, naming the holder."""
    from funnelops.backends.local import LocalBackend

    holder = LocalBackend(home, "p", "r")
    with holder.apply_lock():
        t0 = time.monotonic()
        proc = cli(base[0], home, "--json", "job", "create-infra", "--stage", "IaC", code=3)
        assert time.monotonic() - t0 < 60
        err = _error(proc)
        assert err["error"] == "run_in_progress" and "an apply is in progress" in err["message"]
        assert f"pid {os.getpid()}" in err["message"]
    cli(base[0], home, "job", "create-infra", "--stage", "IaC")


def test_apply_waits_for_the_session_lock_then_times_out_with_a_message(base, home):
    """A force's template update holds the session lock briefly: an apply waits for it (and says so)."""
    lock = home / "locks" / "apply.lock"
    lock.parent.mkdir(exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        t0 = time.monotonic()
        proc = cli(base[0], home, "job", "create-infra", "--stage", "IaC", code=1,
                   env=_env(base[0], home, FUNNELOPS_APPLY_LOCK_TIMEOUT="1"))
        assert time.monotonic() - t0 < 30
        assert "waiting for another apply to finish" in proc.stderr
        assert "timed out" in proc.stderr and str(lock) in proc.stderr
    finally:
        os.close(fd)
