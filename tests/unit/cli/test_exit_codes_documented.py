"""The exit codes the README states are the ones `funnelops --help` states (issue 13: they must agree)."""

from __future__ import annotations

import re
from pathlib import Path

from funnelops.cli.main import HELP

README = Path(__file__).resolve().parents[3] / "README.md"


def _sentence(text: str) -> str:
    found = re.search(r"Exit codes: (.*?\.)\s*(\n\n|$)", text, re.S)
    assert found, "no 'Exit codes:' sentence"
    return " ".join(found.group(1).split())


def test_readme_and_help_state_the_same_exit_codes() -> None:
    assert _sentence(README.read_text(encoding="utf-8")) == _sentence(HELP)
    assert "0 ok, 1 failure, 2 bad usage or invalid project, 3 " in _sentence(HELP)
