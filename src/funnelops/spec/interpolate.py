"""`${VAR}` and `${VAR:-default}` in the project file's string values, from the process environment.

Why: the values that differ per deployment (a GCP project id, a bucket prefix, a service account)
live in an Azure DevOps variable group or in GitHub `vars`, which reach a pipeline's steps as
environment variables. Interpolation runs on the parsed document (after YAML, after the
environment's overlay is merged), one string value at a time, so a variable can never inject YAML
structure, and the result is what validation, `plan` and the spec hash see.

    ${VAR}            the variable's value; unset -> a located error (file, line, field, variable)
    ${VAR:-default}   the default when VAR is unset or empty (as a POSIX shell)
    $${               a literal `${`
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from funnelops.errors import ProblemCollector

Path_ = tuple[Any, ...]

_TOKEN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")
MISSING_HINT = ("export it before running funnelops (in a pipeline: add it to the environment's variable group "
                "or GitHub `vars`), or give a default: ${{{name}:-value}}")


def has_reference(text: str) -> bool:
    """Whether `text` names a variable (an escaped `$${` alone does not)."""
    return any(m.group(0) != "$${" for m in _TOKEN.finditer(text))


def variables(text: str) -> list[str]:
    """The names of the variables `text` references, defaults or not (`$${` is not one)."""
    return [m.group(1) for m in _TOKEN.finditer(text) if m.group(1)]


def substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[str], bool]:
    """(the text with references replaced, the unset required variables, whether a `${` is malformed)."""
    missing: list[str] = []
    malformed = False

    def one(m: re.Match[str]) -> str:
        nonlocal malformed
        token = m.group(0)
        if token == "$${":
            return "${"
        name, default = m.group(1), m.group(2)
        if name is None:
            malformed = True
            return token
        value = environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            missing.append(name)
            return token
        return value

    return _TOKEN.sub(one, text), missing, malformed


def interpolate(data: Any, environ: Mapping[str, str], lines: Mapping[Path_, int], file: str,
                problems: ProblemCollector, path: Path_ = ()) -> Any:
    """`data` with every string value interpolated; unset variables and malformed references are
    recorded in `problems` at the value's line (mapping keys are never interpolated)."""
    from funnelops.spec.project import line_for

    if isinstance(data, dict):
        return {k: interpolate(v, environ, lines, file, problems, path + (k,)) for k, v in data.items()}
    if isinstance(data, list):
        return [interpolate(v, environ, lines, file, problems, path + (i,)) for i, v in enumerate(data)]
    if not isinstance(data, str) or "${" not in data:
        return data
    text, missing, malformed = substitute(data, environ)
    field = dotted(path)
    for name in dict.fromkeys(missing):
        problems.add(file, line_for(lines, path), field,
                     f"the variable {name} is not set (the value is {data!r})", MISSING_HINT.format(name=name))
    if malformed:
        problems.add(file, line_for(lines, path), field,
                     f"{data!r} has a `${{` that is not a reference",
                     "write ${NAME} or ${NAME:-default} (NAME: letters, digits, _), or $${ for a literal ${")
    return text


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + str(part)
    return out or "(top)"
