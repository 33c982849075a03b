"""Helpers for the project-definition tests: write a small project to tmp_path and load it."""

from __future__ import annotations

from pathlib import Path

import pytest

@pytest.fixture
def write_project(tmp_path: Path):
    """write_project(yaml_text, files={relpath: text}) -> path of funnel.yaml."""

    def write(text: str, files: dict[str, str] | None = None) -> Path:
        for rel, body in (files or {}).items():
            target = tmp_path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body, encoding="utf-8")
        path = tmp_path / "funnel.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write
