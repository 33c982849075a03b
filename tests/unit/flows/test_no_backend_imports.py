"""`flows/` imports no backend (issue #10 item 3): engines get clients, paths and the overlap
guard from the runtime a backend's factory builds; only the registry (`funnelops.backends`)
is named, by the flows program, to obtain it. Until the import contracts run in `make test`,
this test holds the line."""

from __future__ import annotations

import ast
from pathlib import Path

FLOWS = Path(__file__).resolve().parents[3] / "src" / "funnelops" / "flows"
# the example's data generator is leaving the package (#10 item 5); it is not part of the flows program
NOT_FLOWS = {"generate.py"}


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return out


def test_flows_import_no_concrete_backend():
    bad = {f"{p.relative_to(FLOWS)}: {name}"
           for p in FLOWS.rglob("*.py") if p.name not in NOT_FLOWS
           for name in _imports(p)
           if name.startswith(("funnelops.backends.local", "funnelops.backends.gcp"))}
    assert not bad, sorted(bad)
