#!/usr/bin/env python3
"""Export a GitHub environment's variables to the job's later steps, as Azure does for a variable group.

Azure Pipelines hands every (non-secret) variable of the variable group `funnel-<env>` to every
script step as an environment variable; GitHub Actions does not: `vars` is only an expression
context. The project file reads its per-environment values as `${VAR}` from the environment
(docs/environments.md), so the GitHub workflows pass `toJSON(vars)` to this script, which appends
each variable to $GITHUB_ENV (multi-line values with a random delimiter, as GitHub documents for
GITHUB_ENV). Names GitHub reserves (GITHUB_*, RUNNER_*) and names that are not shell identifiers
are skipped with a warning. Values are never printed, only names.

  VARS_JSON='${{ toJSON(vars) }}' python pipelines/scripts/export-github-vars.py
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED = ("GITHUB_", "RUNNER_")


def main() -> int:
    target = os.environ.get("GITHUB_ENV")
    if not target:
        print("::error::GITHUB_ENV is not set: run this inside a GitHub Actions step")
        return 2
    try:
        variables = json.loads(os.environ.get("VARS_JSON") or "{}")
    except ValueError as exc:
        print(f"::error::VARS_JSON is not JSON ({exc}); pass it as env: VARS_JSON: ${{{{ toJSON(vars) }}}}")
        return 2
    exported = []
    with open(target, "a", encoding="utf-8") as fh:
        for name, value in sorted(variables.items()):
            if not NAME.fullmatch(name) or name.upper().startswith(RESERVED):
                print(f"::warning::variable {name!r} not exported (reserved or not a shell name)")
                continue
            text = str(value)
            delimiter = f"FUNNELOPS_EOF_{secrets.token_hex(8)}"
            fh.write(f"{name}<<{delimiter}\n{text}\n{delimiter}\n")
            exported.append(name)
    print(f"Exported {len(exported)} variable(s) to the following steps: {', '.join(exported) or '(none)'}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
