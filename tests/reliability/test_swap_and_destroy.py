"""kill -9 in a partition swap, `data generate` over a user's files, and destroy under a running run.

Real processes, real files, real leases: the swap runs in a child that SIGKILLs itself at a
fault-injection point (`FUNNELOPS_FAULT`, read by funnelops.flows.atomic), leases are taken
through the real LeaseStore by a child process that stays alive, and the CLI runs as the real
console script.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from funnelops.flows.atomic import exchange, exchange_supported
from funnelops.backends.local.partitions import lock_path, recover_swaps, replace_partitions

pytestmark = pytest.mark.reliability

REPO = Path(__file__).resolve().parents[2]
FUNNEL = REPO / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
RAW = "analitica-funnel-raw"
TABLE = "funnel_leads"  # any folder of the trusted bucket: the swap does not care which
DAYS = ("d=2024-01-01", "d=2024-01-02", "d=2024-01-03")


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNNELOPS_")}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", **extra}


# -- item 7: the partition swap -------------------------------------------------------------------

SWAP_CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from funnelops.backends.local.partitions import lock_path, replace_partitions
    home = Path(sys.argv[1])
    table = home / "buckets" / "trusted" / "funnel_leads"
    replace_partitions(table, home / "tmp" / "work-1" / "data", "d", lambda d: True,
                       lock_path(home, "trusted", "funnel_leads"), home / "tmp")
    print("swapped")
""")


def _partition(folder: Path, tag: str, day: str, files: int) -> None:
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"part-{i}.parquet").write_text(f"{tag} {day} {i}\n")


def _content(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def _swap_home(tmp_path: Path) -> tuple[Path, Path, dict, dict]:
    """Old partitions 01, 02 (02 not in the new output: removed); new 01 and 03 (03 added)."""
    home = tmp_path / "home"
    table = home / "buckets" / "trusted" / TABLE
    new = home / "tmp" / "work-1" / "data"
    for day in DAYS[:2]:
        _partition(table / day, "old", day, 3)
    for day in (DAYS[0], DAYS[2]):
        _partition(new / day, "new", day, 2)
    old = {d: _content(table / d) for d in DAYS[:2]}
    fresh = {d: _content(new / d) for d in (DAYS[0], DAYS[2])}
    return home, table, old, fresh


def _assert_whole(table: Path, old: dict, fresh: dict, must_exist: tuple[str, ...]) -> None:
    """Each partition is absent only if allowed, else exactly the old or the new complete set."""
    for day in DAYS:
        part = table / day
        if not part.exists():
            assert day not in must_exist, f"partition {day} is missing"
            continue
        got = _content(part)
        assert got in (old.get(day), fresh.get(day)), f"partition {day} is a mix: {sorted(got)}"


def _kill_swap(home: Path, fault: str) -> None:
    proc = subprocess.run([sys.executable, "-c", SWAP_CHILD, str(home)], env=_env(FUNNELOPS_FAULT=fault,
                          PYTHONPATH=os.environ.get("PYTHONPATH", "")), capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stdout, proc.stderr)
    assert "swapped" not in proc.stdout


def _run_flows_start(home: Path) -> subprocess.CompletedProcess:
    """The flows entry point with no flows selected: just a run's start (where recovery happens)."""
    proc = subprocess.run([sys.executable, "-m", "funnelops.flows", f"--project={FUNNEL / 'funnel.yaml'}",
                           f"--home={home}", "--granularity=DAY", "--period=2024-01-01",
                           "--trusted_flows=false", "--refined_flows=false"],
                          env=_env(PYTHONPATH=os.environ.get("PYTHONPATH", "")), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def _leftovers(home: Path) -> list[str]:
    tmp = home / "tmp"
    return sorted(p.name for p in tmp.iterdir() if p.name.startswith(("trash-", "swap-"))) if tmp.is_dir() else []


@pytest.mark.skipif(not exchange_supported(), reason="renameat2(RENAME_EXCHANGE) not available here")
def test_kill_9_mid_swap_never_leaves_a_partition_missing(tmp_path):
    home, table, old, fresh = _swap_home(tmp_path)
    _kill_swap(home, "swap-mid")
    # killed right after the exchange of the first partition: it is whole (the new set), never missing
    _assert_whole(table, old, fresh, must_exist=DAYS[:2])
    assert _content(table / DAYS[0]) == fresh[DAYS[0]]
    assert _leftovers(home), "the swap's journal should still be there"
    _run_flows_start(home)
    _assert_whole(table, old, fresh, must_exist=DAYS[:2])
    assert _leftovers(home) == []
    assert not (home / "tmp" / "work-1" / "data").exists()


def test_kill_9_between_two_renames_is_recovered_at_the_next_run_start(tmp_path):
    """Without the exchange (or where it is unsupported) the swap takes two renames; a kill -9
    between them strands the old partition in the trash, and the next run's start puts it back."""
    home, table, old, fresh = _swap_home(tmp_path)
    _kill_swap(home, "no-exchange,swap-mid")
    assert not (table / DAYS[0]).exists()  # the gap the journal exists for
    proc = _run_flows_start(home)
    assert "put back partition" in proc.stdout and DAYS[0] in proc.stdout
    _assert_whole(table, old, fresh, must_exist=DAYS[:2])
    assert _content(table / DAYS[0]) == old[DAYS[0]]
    assert _leftovers(home) == []


@pytest.mark.parametrize("fault", ["swap-committed", "no-exchange,swap-committed"])
def test_kill_9_after_commit_keeps_the_new_table_and_cleans_up(tmp_path, fault):
    """A committed swap is finished: recovery removes its trash, it never brings old partitions back."""
    home, table, old, fresh = _swap_home(tmp_path)
    _kill_swap(home, fault)
    assert recover_swaps(home / "tmp") == []
    assert sorted(p.name for p in table.iterdir()) == [DAYS[0], DAYS[2]]
    assert _content(table / DAYS[0]) == fresh[DAYS[0]] and _content(table / DAYS[2]) == fresh[DAYS[2]]
    assert _leftovers(home) == []


def test_recovery_leaves_a_live_swap_alone(tmp_path):
    """DAY, MONTH and YEAR run at once: one run's start must not settle another's swap in progress."""
    home, table, old, fresh = _swap_home(tmp_path)
    _kill_swap(home, "no-exchange,swap-mid")
    lock = lock_path(home, "trusted", TABLE)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX)
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert recover_swaps(home / "tmp", lock_timeout=0.2) == []
        assert not (table / DAYS[0]).exists() and _leftovers(home)
    finally:
        holder.kill()
        holder.wait()
    assert recover_swaps(home / "tmp") == [f"{table}/{DAYS[0]}"]
    assert _content(table / DAYS[0]) == old[DAYS[0]] and _leftovers(home) == []


def test_before_commit_runs_under_the_exclusive_lock_and_can_stop_the_swap(tmp_path):
    home, table, old, fresh = _swap_home(tmp_path)
    lock = lock_path(home, "trusted", TABLE)
    seen = []

    def check() -> None:
        fd = os.open(lock, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        seen.append(sorted(p.name for p in table.iterdir()))
        raise RuntimeError("lease lost")

    with pytest.raises(RuntimeError, match="lease lost"):
        replace_partitions(table, home / "tmp" / "work-1" / "data", "d", lambda d: True, lock, home / "tmp",
                           before_commit=check)
    assert seen == [list(DAYS[:2])]
    assert {d: _content(table / d) for d in DAYS[:2]} == old and not (table / DAYS[2]).exists()
    assert _leftovers(home) == []
    assert replace_partitions(table, home / "tmp" / "work-1" / "data", "d", lambda d: True, lock,
                              home / "tmp", before_commit=lambda: None) == (2, 1)
    assert {p.name: _content(p) for p in table.iterdir()} == fresh


def test_a_forged_journal_moves_nothing(tmp_path):
    home = tmp_path / "home"
    victim = tmp_path / "elsewhere"
    _partition(victim / "trash-x" / "d=2024-01-01", "victim", "x", 1)
    (home / "tmp").mkdir(parents=True)
    (home / "tmp" / "swap-evil.json").write_text(json.dumps({
        "table_dir": str(tmp_path / "target"), "new_dir": str(victim), "trash": str(victim / "trash-x"),
        "lock": str(tmp_path / "x.lock"), "partitions": ["d=2024-01-01"], "state": "swapping"}))
    assert recover_swaps(home / "tmp") == []
    assert (victim / "trash-x" / "d=2024-01-01").is_dir() and not (tmp_path / "target").exists()


@pytest.mark.skipif(not exchange_supported(), reason="renameat2(RENAME_EXCHANGE) not available here")
def test_exchange_swaps_two_folders(tmp_path):
    _partition(tmp_path / "a", "a", "x", 1)
    _partition(tmp_path / "b", "b", "x", 2)
    assert exchange(tmp_path / "a", tmp_path / "b")
    assert len(list((tmp_path / "a").iterdir())) == 2 and len(list((tmp_path / "b").iterdir())) == 1
    with pytest.raises(FileNotFoundError):
        exchange(tmp_path / "a", tmp_path / "missing")


# -- a live lease, held by another process through the real LeaseStore -----------------------------

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from funnelops.backends.local.leases import LeaseStore
    from funnelops.backends.local.ledger_db import LedgerDB
    LeaseStore(LedgerDB(Path(sys.argv[1]) / "ledger.sqlite")).acquire(sys.argv[2], "holder-" + sys.argv[2],
                                                                       expiry_s=600)
    print("held", flush=True)
    time.sleep(120)
""")


class LeaseHolder:
    """A child process that holds `workflow`'s lease for as long as it lives."""

    def __init__(self, home: Path, workflow: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(home), workflow], stdout=subprocess.PIPE,
                                     text=True, env=_env(PYTHONPATH=os.environ.get("PYTHONPATH", "")))
        assert self.proc.stdout.readline().strip() == "held"

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def cli(home: Path, *args: str, project: Path = FUNNEL / "funnel.yaml", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([FUNNELOPS, "--project", str(project), "--home", str(home), *args],
                          env=_env(PYTHONPATH=os.environ.get("PYTHONPATH", ""), **env), capture_output=True,
                          text=True, timeout=300)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- item 6: data generate -------------------------------------------------------------------------

GEN = ("data", "generate", "--rows", "300", "--start", "2024-03-01", "--end", "2024-03-02", "--seed", "5")


def _user_extract(home: Path) -> Path:
    mine = home / "buckets" / RAW / "FUNNEL" / "TERADATA" / "leads" / "2024" / "03" / "leads_20240301.csv"
    mine.parent.mkdir(parents=True)
    mine.write_text("ID_LEAD,FECHA_CREACION\nMINE-1,2024-03-01 10:00:00\n")
    return mine


def test_generate_refuses_a_folder_that_holds_files_unless_replace(tmp_path):
    home = tmp_path / "home"
    mine = _user_extract(home)
    before = _snapshot(home)
    r = cli(home, *GEN)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "FUNNEL/TERADATA is not empty" in r.stderr and "leads_20240301.csv" in r.stderr
    assert "--replace" in r.stderr and "Traceback" not in r.stderr
    assert _snapshot(home) == before  # nothing touched, nothing left behind
    assert not list(home.glob("tmp/generate-*"))

    r = cli(home, *GEN, "--replace")
    assert r.returncode == 0, r.stderr
    assert "MINE-1" not in mine.read_text() and mine.read_text().lstrip("\ufeff").startswith("ID_LEAD,")
    assert (home / "buckets" / RAW / "FUNNEL" / "EXCEL" / "metas" / "2024" / "metas_202403.xlsx").is_file()
    assert list((home / "tmp").iterdir()) == []


def test_generate_on_an_empty_home_writes_everything(tmp_path):
    home = tmp_path / "home"
    r = cli(home, "--json", *GEN)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    root = home / "buckets" / RAW
    assert report["bucket_dir"] == str(root)
    assert len(list(root.glob("FUNNEL/TERADATA/**/*.csv"))) == report["csv_files"] == 8
    assert (root / report["bom_files"][0]).read_bytes().startswith(b"\xef\xbb\xbf")
    assert cli(home, *GEN).returncode == 2  # the second time, its own output is "what is there"


def test_kill_9_of_generate_leaves_the_bucket_as_it_was(tmp_path):
    home = tmp_path / "home"
    assert cli(home, *GEN).returncode == 0
    before = _snapshot(home / "buckets")
    r = cli(home, *GEN[:-1], "6", "--replace", FUNNELOPS_FAULT="generate-before-commit")
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert _snapshot(home / "buckets") == before  # the new files were all written aside, none in place
    assert list((home / "tmp").glob("generate-*"))  # a dead generator's scratch folder...
    assert cli(home, *GEN[:-1], "6", "--replace").returncode == 0
    assert list((home / "tmp").iterdir()) == []  # ...is swept by the next one
    assert _snapshot(home / "buckets") != before


def test_generate_refuses_while_any_workflow_holds_a_lease(tmp_path):
    home = tmp_path / "home"
    mine = _user_extract(home)
    holder = LeaseHolder(home, "wf_funnel_mes")
    try:
        before = _snapshot(home / "buckets")
        r = cli(home, "--json", *GEN, "--replace")
        assert r.returncode == 3, r.stdout + r.stderr
        doc = json.loads(r.stdout or r.stderr)
        assert "wf_funnel_mes" in doc["message"] and "holder-wf_funnel_mes" in doc["message"]
        assert _snapshot(home / "buckets") == before and "MINE-1" in mine.read_text()
    finally:
        holder.kill()
    assert cli(home, *GEN, "--replace").returncode == 0  # the holder died: its lease no longer counts


# -- item 8: destroy ---------------------------------------------------------------------------------

def test_destroy_refuses_while_a_run_holds_a_lease(tmp_path):
    home = tmp_path / "home"
    r = cli(home, "job", "create-infra", "--stage", "IaC")
    assert r.returncode == 0, r.stderr
    source = home / "buckets" / RAW / "FUNNEL" / "TERADATA" / "leads" / "2024" / "01" / "leads_20240101.csv"
    source.parent.mkdir(parents=True)
    source.write_text("ID_LEAD\nL1\n")
    holder = LeaseHolder(home, "wf_funnel_dia")
    try:
        before = _snapshot(home / "buckets")
        r = cli(home, "destroy", "--yes")
        assert r.returncode == 3, r.stdout + r.stderr
        assert "cannot destroy while a run is in progress" in r.stderr
        assert "wf_funnel_dia" in r.stderr and "holder-wf_funnel_dia" in r.stderr
        assert "Traceback" not in r.stderr
        assert _snapshot(home / "buckets") == before and source.is_file()
        plan = json.loads(cli(home, "plan", "--stage", "IaC", "--json").stdout)
        assert plan["summary"]["create"] == 0  # every resource still there
    finally:
        holder.kill()
    r = cli(home, "destroy", "--yes")
    assert r.returncode == 0, r.stderr
    assert not source.exists()
