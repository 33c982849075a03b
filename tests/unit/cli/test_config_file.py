"""funnelops.toml (issue 13): a folder names its project, home and backend once.

On main there was no such file: `funnelops status` in the demo folder read a missing ./funnel.yaml
and the missing-project hint named neither the path looked in nor what to do.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from funnelops.cli.config import ConfigError, load_config, resolve_settings
from funnelops.cli.main import main as cli_main

PROJECT = textwrap.dedent("""
    project: {id: tiny-config, time_zone: America/Bogota, backend: local}
    datasets: [{id: tiny_ds}]
""")


@pytest.fixture
def cli(monkeypatch, capsys):
    for name in ("FUNNELOPS_PROJECT", "FUNNELOPS_HOME", "FUNNELOPS_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")

    def run(*args: str) -> tuple[int, Any, str]:
        capsys.readouterr()
        code = cli_main(["--json", *args])
        out = capsys.readouterr()
        text = out.out.strip() or out.err.strip()
        try:
            return code, json.loads(text), out.err
        except ValueError:
            return code, text, out.err

    return run


def _layout(root: Path, config: str) -> Path:
    (root / "proj").mkdir(parents=True)
    (root / "proj" / "funnel.yaml").write_text(PROJECT, encoding="utf-8")
    (root / "work" / "deeper").mkdir(parents=True)
    (root / "funnelops.toml").write_text(config, encoding="utf-8")
    return root


def test_a_command_in_a_subfolder_uses_the_nearest_config(tmp_path, monkeypatch, cli):
    root = _layout(tmp_path, 'project = "proj/funnel.yaml"\nhome = "state"\nbackend = "local"\n')
    monkeypatch.chdir(root / "work" / "deeper")
    code, doc, _ = cli("status")
    assert code == 0, doc
    assert doc["project"] == "tiny-config"
    assert (root / "state").is_dir() and not (root / "work" / "deeper" / ".funnelops").exists()


def test_flag_beats_env_beats_file_beats_default(tmp_path, monkeypatch):
    root = _layout(tmp_path, 'project = "proj/funnel.yaml"\nhome = "state"\n')
    monkeypatch.chdir(root)
    s = resolve_settings(None, None, None, {}, cwd=root)
    assert (s.project, s.home, s.backend) == (root / "proj" / "funnel.yaml", root / "state", None)
    assert s.config_file == root / "funnelops.toml" and s.sources["home"] == str(root / "funnelops.toml")
    s = resolve_settings(Path("other.yaml"), None, "gcp", {"project": "env", "backend": "flag"}, cwd=root)
    assert (s.project, s.home, s.backend) == (Path("other.yaml"), root / "state", "gcp")
    assert s.sources == {"project": "env", "home": str(root / "funnelops.toml"), "backend": "flag"}
    s = resolve_settings(None, None, None, {}, cwd=tmp_path.parent)
    assert (s.project, s.home, s.config_file) == (Path("funnel.yaml"), Path(".funnelops"), None)


def test_env_and_flag_win_over_the_file_on_the_command_line(tmp_path, monkeypatch, cli):
    root = _layout(tmp_path, 'project = "missing/funnel.yaml"\n')
    monkeypatch.chdir(root)
    code, err, _ = cli("status")
    assert code == 2 and str(root / "missing" / "funnel.yaml") in err["message"]
    assert str(root / "funnelops.toml") in err["message"]  # says which config file pointed there
    monkeypatch.setenv("FUNNELOPS_PROJECT", str(root / "proj" / "funnel.yaml"))
    monkeypatch.setenv("FUNNELOPS_HOME", str(root / "h"))
    assert cli("status")[0] == 0
    code, err, _ = cli("--project", "nowhere.yaml", "status")
    assert code == 2 and "given with --project" in err["message"]


@pytest.mark.parametrize("text, located, hint", [
    ('projekt = "p.yaml"\n', "funnelops.toml:1: projekt: unknown key", "did you mean 'project'?"),
    ('project = "p.yaml"\nbackend = "aws"\n', "funnelops.toml:2: backend: unknown backend 'aws'", 'backend = "local"'),
    ("home = 3\n", "funnelops.toml:1: home: must be a non-empty string", 'quote it: home = "..."'),
    ('project = "p.yaml\n', "not valid TOML", "key = \"value\""),
])
def test_a_bad_config_is_refused_with_file_key_and_hint(tmp_path, monkeypatch, cli, text, located, hint):
    (tmp_path / "funnelops.toml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as bad:
        load_config(tmp_path / "funnelops.toml")
    assert located in bad.value.message and hint in (bad.value.hint or "")
    monkeypatch.chdir(tmp_path)
    code, err, stderr = cli("status")
    assert code == 2 and err["error"] == "invalid_config" and "Traceback" not in stderr


def test_the_missing_project_error_says_where_and_what_to_do(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    code, err, _ = cli("status")
    assert code == 2
    assert str(tmp_path / "funnel.yaml") in err["message"] and "no funnelops.toml" in err["message"]
    for way in ("funnelops init", "--project", "cd into a project folder"):
        assert way in err["hint"]


def test_help_answers_beside_a_broken_config(tmp_path, monkeypatch, capsys):
    (tmp_path / "funnelops.toml").write_text('projekt = "x"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["status", "--help"]) == 0
    assert "Usage: funnelops status" in capsys.readouterr().out
