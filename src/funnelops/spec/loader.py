"""Load `funnel.yaml` into validated models, keeping file:line for every field.

PyYAML's composer gives nodes with marks; we build plain Python values from them and record,
for each path (``("buckets", 0, "name")``), the line it came from. Pydantic's error locations are
paths too, so every validation error maps back to a line. All problems are collected and
raised together as one :class:`~funnelops.errors.ProjectError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from funnelops.errors import Problem, ProblemCollector, ProjectError
from funnelops.spec.files import ProjectFileRefused, read_project_text
from funnelops.spec.models import ProjectSpec
from funnelops.spec.partial import partial_problems
from funnelops.spec.project import LoadedProject, Path_, line_for
from funnelops.spec import environments, yaml12
from funnelops.spec.interpolate import interpolate
from funnelops.spec.validate import resolve_and_check


if TYPE_CHECKING:
    from yaml import SafeLoader as _BaseLoader
else:  # libyaml's parser when present: ~10x faster
    _BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_BaseLoader):
    """SafeLoader whose composer we drive by hand; plain scalars resolve with the YAML 1.2 core
    schema (spec/yaml12.py), not PyYAML's 1.1 rules: `country: NO` stays the string "NO"."""


yaml12.install(_LineLoader)


_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_STR_TAG = "tag:yaml.org,2002:str"
# How many values a document may expand to. YAML aliases let a few hundred bytes name billions of
# values (the "billion laughs"); building them took 54 s and 1.7 GB at 7 levels and was killed at 9.
# The shipped project has under 2,000 values, so this leaves room for projects fifty times larger.
MAX_YAML_VALUES = 100_000


class _TooBig(Exception):
    """Raised to stop building at once: the budget is spent (the problem is already recorded)."""


class _Builder:
    """Builds plain values from composed nodes, recording each path's line, within a value budget."""

    def __init__(self, loader: _LineLoader, lines: dict[Path_, int], problems: ProblemCollector, file: str,
                 budget: int = MAX_YAML_VALUES, notes: list[Problem] | None = None) -> None:
        self.loader, self.lines, self.problems, self.file = loader, lines, problems, file
        self.left = budget
        self.budget = budget
        self.notes = notes  # where a YAML 1.1 reader would read a plain scalar differently

    def _note_11(self, node: yaml.Node, path: Path_, value: Any) -> Any:
        """Record a warning when a YAML 1.1 reader would not read this plain scalar as `value`."""
        if self.notes is not None and node.style in (None, "") and isinstance(node.value, str):
            other = yaml12.differs(value, node.value)
            if other is not None:
                self.notes.append(Problem(self.file, node.start_mark.line + 1, _dotted(path) or "(top)",
                                          yaml12.note_message(node.value, value, other), yaml12.NOTE_HINT))
        return value

    def _spend(self, node: yaml.Node, path: Path_) -> None:
        self.left -= 1
        if self.left < 0:
            self.problems.add(self.file, node.start_mark.line + 1, _dotted(path) or "(top)",
                              f"the document expands to more than {self.budget:,} values "
                              "(YAML aliases repeat what they point to)",
                              "write the values out, or use fewer aliases to large anchors")
            raise _TooBig

    def _scalar(self, node: yaml.Node, path: Path_) -> Any:
        """A non-string scalar through PyYAML's constructors; their ValueErrors (an integer over
        Python's 4,300-digit limit, a timestamp with month 13) become located problems."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:
            text = node.value if isinstance(node.value, str) else ""
            shown = text if len(text) <= 40 else f"{text[:20]}…({len(text):,} characters)"
            self.problems.add(self.file, node.start_mark.line + 1, _dotted(path) or "(top)",
                              f"the value {shown!r} cannot be read as {node.tag.rsplit(':', 1)[-1]}: "
                              f"{(str(exc) or type(exc).__name__).split(';')[0].strip()[:120]}",
                              "quote it to keep it as text")
            return None

    def build(self, node: yaml.Node, path: Path_, parents: tuple[int, ...] = ()) -> Any:
        self._spend(node, path)
        problems, file, lines = self.problems, self.file, self.lines
        lines[path] = node.start_mark.line + 1
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in parents:  # `&a [*a]`: an alias to an enclosing node
                problems.add(file, node.start_mark.line + 1, _dotted(path) or "(top)",
                             "a YAML alias refers to a node that contains it", "remove the recursive alias")
                return None
            if node.tag not in _PLAIN_TAGS:
                problems.add(file, node.start_mark.line + 1, _dotted(path) or "(top)",
                             f"YAML tag '{node.tag}' is not allowed", "remove the tag")
                return None
            parents = parents + (id(node),)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag == _STR_TAG:
                    key = key_node.value
                elif isinstance(key_node, yaml.ScalarNode):
                    key = self._scalar(key_node, path)
                else:
                    key = None  # a mapping or a list as a key
                if not isinstance(key, (str, int, float, bool)):
                    problems.add(file, key_node.start_mark.line + 1, _dotted(path) or "(top)",
                                 "mapping keys must be plain scalars")
                    continue
                # a bare `on:`/`yes:` key is YAML 1.1's boolean: keep the text written (`on`, not `True`)
                key = key_node.value if isinstance(key, bool) else (str(key) if not isinstance(key, str) else key)
                if key in out:
                    problems.add(file, key_node.start_mark.line + 1, _dotted(path + (key,)),
                                 "duplicate key", "remove one of the two entries")
                out[key] = self.build(value_node, path + (key,), parents)
                lines[path + (key,)] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, path + (i,), parents) for i, v in enumerate(node.value)]
        if node.tag == _STR_TAG:  # most scalars: skip the constructor machinery
            return self._note_11(node, path, node.value)
        return self._note_11(node, path, self._scalar(node, path))


def parse_yaml(text: str, file: str, notes: list[Problem] | None = None) -> tuple[Any, dict[Path_, int]]:
    """Parse YAML text (1.2 core schema) into plain values and a path -> line map; syntax errors are
    located. `notes`, when given, receives a warning per value a YAML 1.1 reader would read differently."""
    lines: dict[Path_, int] = {}
    problems = ProblemCollector()
    loader = None
    try:
        loader = _LineLoader(text)  # the reader refuses control characters right here
        node = loader.get_single_node()
        if node is None:
            return None, lines
        data = _Builder(loader, lines, problems, file, notes=notes).build(node, ())
    except _TooBig:  # recorded as a problem: raised just below
        data = None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ProjectError([Problem(file, line, "(yaml)", f"not valid YAML: {exc.problem or exc}",
                                    "check indentation and quoting on that line")]) from None
    except yaml.YAMLError as exc:
        raise ProjectError([Problem(file, None, "(yaml)", f"not valid YAML: {exc}")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    problems.raise_if_any()
    return data, lines


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _field_name(data: Any, loc: Path_) -> str:
    """Render a pydantic location; list items are named by their `name`/`id` where they have one."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            label = None
            if isinstance(node, list) and 0 <= part < len(node) and isinstance(node[part], dict):
                item = node[part]
                label = item.get("name") or item.get("id") or item.get("step_id")
            out += f"[{part}]" if not label else f"[{label}]"
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
        else:
            out += ("." if out else "") + str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top)"


def _pydantic_problems(exc: ValidationError, data: Any, lines: dict[Path_, int], file: str) -> list[Problem]:
    problems = []
    for err in exc.errors():
        loc, is_key = _document_loc(err["loc"], data)
        msg = err["msg"]
        if is_key:  # a mapping key (a label's, a variable's) is wrong, not its value
            msg = "key: " + msg
        hint = None
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
            parent = loc[:-1]
            hint = _known_fields_hint(loc[-1], parent)
        elif err["type"] == "missing":
            hint = "add this field"
        elif err["type"] == "string_pattern_mismatch":
            msg = f"{err.get('input')!r} is not allowed here"
            hint = f"must match the pattern {err.get('ctx', {}).get('pattern')}"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        problems.append(Problem(file, line_for(lines, loc), _field_name(data, loc), msg, hint))
    return problems


_BRANCHES = ("str", "int", "float", "bool", "none")


def _document_loc(loc: Path_, data: Any) -> tuple[Path_, bool]:
    """A pydantic location as a path in the document: union branch names (`str`, `list[...]`,
    `function-after[...]`) dropped, unless the document really has a key of that name there.
    The flag says the error is about a mapping key (pydantic's `[key]` step)."""
    out: list[Any] = []
    node = data
    for n, part in enumerate(loc):
        if part == "[key]" and n == len(loc) - 1 and not (isinstance(node, dict) and part in node):
            return tuple(out), True
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif isinstance(part, str) and (part in _BRANCHES or part.startswith(("function-", "constrained-", "list["))):
            continue
        else:
            node = None
        out.append(part)
    return tuple(out), False


def _known_fields_hint(name: Any, parent: Path_) -> str | None:
    from funnelops.errors import did_you_mean
    from funnelops.spec import models as m

    model: type[m.Strict] = m.ProjectSpec
    for part in parent:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if info is None:
            info = next((f for f in model.model_fields.values() if f.alias == part), None)
        if info is None:
            return None
        # unwrap Optional[...], list[...], Annotated[...]: `schema: list[ColumnSchema] | None`
        candidates, nxt = [info.annotation], None
        while candidates and nxt is None:
            c = candidates.pop(0)
            if isinstance(c, type) and issubclass(c, m.Strict):
                nxt = c
            else:
                candidates.extend(getattr(c, "__args__", None) or ())
        if nxt is None:
            return None
        model = nxt
    names = [f.alias or k for k, f in model.model_fields.items()]
    return did_you_mean(str(name), names)


def load_project(path: str | Path, backend: str | None = None, env: str | None = None,
                 environ: Mapping[str, str] | None = None) -> LoadedProject:
    """Read, validate and cross-check a project file. Raises ProjectError with every problem.

    `backend`: the backend the command line chose, when it overrides the file's. `env`: the
    environment whose overlay is merged over the base (None: the base as written). `environ`: where
    `${VAR}` values come from (default: the process environment)."""
    p = Path(path)
    file = str(p)
    if not p.exists():
        raise ProjectError([Problem(file, None, "(file)", "project file not found",
                                    "pass --project PATH or set FUNNELOPS_PROJECT")])
    try:
        text = read_project_text(p)
    except ProjectFileRefused as exc:
        raise ProjectError([Problem(file, None, "(file)", str(exc),
                                    "pass the path of a funnel.yaml file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError([Problem(file, None, "(file)", f"cannot read the project file: {exc}")]) from None
    notes: list[Problem] = []
    raw, raw_lines = parse_yaml(text, file, notes)
    if not isinstance(raw, dict):
        raise ProjectError([Problem(file, 1, "(top)", "the project file must be a mapping with a `project:` key",
                                    "see projects/funnel/funnel.yaml for an example")])
    data, lines = resolved_document(raw, raw_lines, file, env, environ)
    try:
        spec = ProjectSpec.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc, data, lines, file)
        seen = {(p.line, p.field, p.message) for p in problems}
        more = partial_problems(data, lines, p, file)
        problems += [q for q in more if (q.line, q.field, q.message) not in seen]
        raise ProjectError(problems) from None
    loaded = LoadedProject(spec=spec, path=p.resolve(), lines=lines, backend_override=backend, env=env,
                           environments=tuple(environments.declared(raw)), notes=notes, document=data)
    resolve_and_check(loaded, file)
    loaded.spec_hash = spec_hash(loaded)
    return loaded


def resolved_document(raw: dict[str, Any], raw_lines: dict[Path_, int], file: str, env: str | None,
                      environ: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[Path_, int]]:
    """The document `env` sees, before validation: its overlay merged over the base, then every
    `${VAR}` replaced (the selected environment's name is `${FUNNELOPS_ENV}`), with its line map."""
    problems = ProblemCollector()
    environments.check_block(raw, raw_lines, file, problems)
    problems.raise_if_any()
    data, lines = environments.select(raw, raw_lines, env, file)
    values = dict(os.environ if environ is None else environ)
    if env is not None:
        values[environments.ENV_VARIABLE] = env
    data = interpolate(data, values, lines, file, problems)
    problems.raise_if_any()
    return data, lines


def spec_hash(loaded: LoadedProject) -> str:
    """A stable hash of the effective definition (spec plus resolved files)."""
    payload = {
        "spec": loaded.spec.model_dump(mode="json", by_alias=True),
        "schemas": {k: [c.model_dump(mode="json") for c in v] for k, v in sorted(loaded.table_schemas.items())},
        "views": dict(sorted(loaded.view_sql.items())),
    }
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
