"""The CLI's contract (issue #13): global flags after any command, valid JSON from every command,
--version, shell completion, --no-color without escapes, `plan --detailed-exitcode` 0/2/1 and
`plan` hiding unchanged resources. The real console script, in subprocesses, on a copy of the
shipped project with a small generated data set taken through IaC and Initial data.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FUNNEL = REPO / "projects" / "funnel"
FUNNELOPS = str(Path(sys.executable).with_name("funnelops"))
DETAILED = "0 no changes, 2 changes, 1 any error"


class Cli:
    """The console script against one project copy and home (through FUNNELOPS_PROJECT/HOME)."""

    def __init__(self, base: Path) -> None:
        shutil.copytree(FUNNEL, base / "project", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        self.base = base
        self.project = base / "project" / "funnel.yaml"
        self.home = base / "home"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("FUNNELOPS_", "FORCE_COLOR", "NO_COLOR"))}
        self.env.update(FUNNELOPS_PROJECT=str(self.project), FUNNELOPS_HOME=str(self.home), COLUMNS="200")

    def __call__(self, *args: str, code: int | None = 0, env: dict[str, str] | None = None,
                 timeout: float = 180) -> subprocess.CompletedProcess:
        proc = subprocess.run([FUNNELOPS, *args], env=dict(self.env, **(env or {})), capture_output=True, text=True,
                              timeout=timeout, cwd=self.base)
        if code is not None:
            assert proc.returncode == code, (f"funnelops {' '.join(args)}: exit {proc.returncode}, expected {code}\n"
                                             f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> Cli:
    c = Cli(tmp_path_factory.mktemp("contract"))
    c("data", "generate", "--rows", "1500")
    c("pipeline", "funnel", "--data-stage", "IaC")
    c("pipeline", "funnel", "--data-stage", "Initial data")
    leads = sorted((c.home / "buckets").glob("*-raw/**/leads_*.csv"))[0]
    (c.base / "leads.csv").write_text("".join(leads.read_text(encoding="utf-8-sig").splitlines(True)[:2]))
    return c


# Every command of the app, with the arguments it needs and how it is run with `--json` at the end:
# "doc" one JSON document, "lines" JSON lines; `--dry-run` where running is heavy or would move
# the platform. A command missing here fails test_every_command_is_listed: add it.
DRY = ("--dry-run",)
COMMANDS: dict[str, tuple[tuple[str, ...], str, int]] = {  # path: (arguments, output shape, exit code)
    "validate": ((), "doc", 0),
    "plan": (("--stage", "Initial data"), "doc", 0),
    "apply": (("{base}/saved.json",), "doc", 0),
    "destroy": ((), "doc", 2),  # refused without --yes: the error is the JSON document
    "runs": ((), "doc", 0),
    "logs": (("1",), "lines", 0),
    "cancel": (("1",), "doc", -1),  # run 1 has ended: said either way (-1: any exit code)
    "status": ((), "doc", 0),
    "tables": ((), "doc", 0),
    "lineage": ((), "doc", 0),
    "watch": (("--once",), "doc", -1),  # the project declares no channels: the refusal is the document
    "query": (("SELECT 1 AS one",), "doc", 0),
    "backfill": (("--workflow", "funnel-dia", "--from", "2026-01-01", "--to", "2026-01-02", *DRY), "doc", 0),
    "demo": (("--dir", "{base}/demo", *DRY), "doc", 0),
    "init": (("{base}/new-project", "--name", "Contract Check"), "doc", 0),
    "spec schema": ((), "doc", 0),
    "spec reference": ((), "doc", 0),
    "job create-infra": (("--stage", "Initial data"), "doc", 0),
    "job run-workflow-templates": (DRY, "doc", 0),
    "job rerun-workflow-templates": (DRY, "doc", 0),
    "job force-scheduler": (("--scheduler", "dia", *DRY), "doc", 0),
    "pipeline funnel": (("--data-stage", "Initial data", *DRY), "doc", 0),
    "pipeline workflow": (("--scheduler", "dia", *DRY), "doc", 0),
    "scheduler list": ((), "doc", 0),
    "scheduler pause": (("dia",), "doc", 0),
    "scheduler resume": (("dia",), "doc", 0),
    "scheduler run": (("dia", *DRY), "doc", 0),
    "scheduler serve": (DRY, "lines", 0),
    "data generate": (("--rows", "100", *DRY), "doc", 0),
    "data load": (("{base}/leads.csv", "--flow", "leads", "--date-column", "FECHA_CREACION", *DRY), "doc", 0),
    "ui": (("--port", "0", *DRY), "doc", 0),  # serving runs until Ctrl-C: tests/integration/ui/test_api.py
}


def _command_paths() -> list[str]:
    """Every leaf command of the app, walked through its click tree."""
    import typer

    from funnelops.cli.main import app

    root = typer.main.get_command(app)
    paths: list[str] = []

    def walk(command, prefix: list[str]) -> None:
        subs = getattr(command, "commands", None)
        if not subs:
            paths.append(" ".join(prefix))
            return
        for name, sub in subs.items():
            walk(sub, [*prefix, name])

    walk(root, [])
    return sorted(paths)


def test_every_command_is_listed() -> None:
    assert _command_paths() == sorted(COMMANDS), "add the new command to COMMANDS, with how to run it"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_command_prints_json_with_json_at_the_end(cli: Cli, path: str) -> None:
    args, shape, code = COMMANDS[path]
    if path == "apply":  # a saved plan of the platform as it is now
        cli("plan", "--stage", "Initial data", "-out", str(cli.base / "saved.json"))
    argv = [*path.split(), *(a.format(base=cli.base) for a in args), "--json"]
    proc = cli(*argv, code=None if code < 0 else code)
    assert proc.stdout.strip(), f"funnelops {' '.join(argv)} printed nothing on stdout"
    if shape == "doc":
        json.loads(proc.stdout)  # exactly one document
    else:
        for line in proc.stdout.splitlines():
            assert isinstance(json.loads(line), dict), line


def test_logs_json_lines_carry_each_chunk_then_the_run(cli: Cli) -> None:
    lines = [json.loads(x) for x in cli("logs", "1", "--json").stdout.splitlines()]
    *chunks, last = lines
    assert chunks and all(set(c) == {"run", "source", "text"} and c["run"] == "1" for c in chunks)
    assert "-m funnelops.flows" in "".join(c["text"] for c in chunks)
    assert last["run"] == "1" and last["state"] == "DONE" and "console_url" in last


def test_global_flags_anywhere_and_nothing_after_double_dash(cli: Cli) -> None:
    for argv in (["status", "--json"], ["--json", "status"], ["job", "--json", "create-infra", "--stage", "IaC",
                                                              "--dry-run"],
                 ["job", "create-infra", "--dry-run", "--stage", "IaC", "--json", "--no-color", "--debug"]):
        json.loads(cli(*argv).stdout)
    out = cli("plan", "--stage", "Initial data", "--dry-run", "--json")
    assert json.loads(out.stdout)["dry_run"] is True
    # after `--`, `--json` is an argument (a file name here), not the flag: no JSON, the file is missing
    proc = cli("data", "load", "--flow", "leads", "--", "--json", code=None)
    assert proc.returncode == 2 and not proc.stdout.lstrip().startswith("{")
    assert "--json" in proc.stderr


def test_version(cli: Cli) -> None:
    from importlib.metadata import version

    out = cli("--version")
    assert out.stdout.strip() == f"funnelops {version('funnelops')}"
    assert re.fullmatch(r"funnelops \d+\.\d+\.\d+\S*", out.stdout.strip())


def test_shell_completion_is_on(cli: Cli) -> None:
    help_text = cli("--help").stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
    script = cli("--show-completion", "bash").stdout
    assert "_FUNNELOPS_COMPLETE" in script and "complete" in script


def test_no_color_means_no_escape_sequences(cli: Cli) -> None:
    forced = {"FORCE_COLOR": "1", "TTY_COMPATIBLE": "1"}
    assert "\x1b[" in cli("validate", env=forced).stdout  # the check below is not vacuous
    plan = ["plan", "--stage", "Initial data", "--show-unchanged"]  # bold and dim lines
    assert "\x1b[1m" in cli(*plan, env=forced).stdout
    for argv, env in ((["validate", "--no-color"], forced), (plan, dict(forced, NO_COLOR="1")),  # bold kept on main
                      (["--no-color", *plan], forced), ([*plan, "--no-color"], forced)):
        proc = cli(*argv, env=env)
        assert "\x1b[" not in proc.stdout + proc.stderr, argv
        assert proc.stdout.strip()
    err = cli("plan", "--stage", "bogus", "--no-color", env=forced, code=2)
    assert "Error:" in err.stderr and "\x1b[" not in err.stderr


def test_detailed_exitcode_is_0_2_1_and_stated_alike(cli: Cli, tmp_path: Path) -> None:
    cli("plan", "--stage", "Initial data", "--detailed-exitcode", code=0)
    cli("plan", "--stage", "Workflow", "--detailed-exitcode", code=2)  # the workflow stage changes templates
    cli("plan", "--stage", "bogus", "--detailed-exitcode", code=1)  # a bad value: usage error, 1 under the flag
    cli("plan", "--no-such-option", "--detailed-exitcode", code=1)  # click's own usage error too
    bad = tmp_path / "funnel.yaml"
    bad.write_text("project: {id: 3\n")
    cli("--project", str(bad), "plan", "--detailed-exitcode", code=1)
    cli("--project", str(bad), "plan", code=2)  # without the flag: invalid project stays 2
    for text in (cli("--help").stdout, cli("plan", "--help").stdout):
        assert DETAILED in " ".join(text.split())


def test_plan_hides_unchanged_unless_asked(cli: Cli) -> None:
    out = cli("plan", "--stage", "Initial data").stdout
    assert "unchanged bucket." not in out and "No changes" in out
    assert re.search(r"Plan: 0 to create, .* [1-9]\d* unchanged", out)
    shown = cli("plan", "--stage", "Initial data", "--show-unchanged").stdout
    assert re.search(r"=\s+unchanged\s+bucket\.", shown)
