"""YAML 1.2 core-schema scalars for the project file, and where a YAML 1.1 reader would differ.

PyYAML implements YAML 1.1, where `country: NO` is the boolean false, `yes/no/on/off/y/n` are
booleans, `010` is the octal 8, `1:30` the sexagesimal 90 and `2024-01-01` a date. A project that
said `country: NO` ran its templates with `--country=false` (issue 15). The project file is now read
with the YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution): only
`true|True|TRUE|false|False|FALSE` are booleans, integers are decimal, `0o` octal or `0x` hex, and
everything else a 1.1 reader would have turned into a value is a string. Because other tools (an
editor's YAML plugin, a pipeline's YAML step, `yq`) may still read the file as 1.1, `validate`
warns at every plain scalar whose 1.1 reading differs, so the author can quote it.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

import yaml

BOOL = "tag:yaml.org,2002:bool"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
NULL = "tag:yaml.org,2002:null"
STR = "tag:yaml.org,2002:str"

# (tag, pattern, first characters) of the 1.2 core schema, in resolution order
CORE_RESOLVERS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    (NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    (BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (INT, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (FLOAT, re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"), "-+.0123456789"),
)


def install(loader_cls: Any) -> None:
    """Give `loader_cls` (a SafeLoader/CSafeLoader subclass) the 1.2 core schema's implicit
    resolvers and constructors. The C parser calls the Python `resolve`, so this covers both."""
    loader_cls.yaml_implicit_resolvers = {}
    for tag, pattern, first in CORE_RESOLVERS:
        loader_cls.add_implicit_resolver(tag, pattern, list(first))
    loader_cls.yaml_implicit_resolvers.setdefault("", [(NULL, CORE_RESOLVERS[0][1])])
    loader_cls.add_constructor(INT, _construct_int)
    loader_cls.add_constructor(FLOAT, _construct_float)


def core_int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def core_float(text: str) -> float:
    low = text.lower()
    if low.endswith(".inf"):
        return -math.inf if low.startswith("-") else math.inf
    if low == ".nan":
        return math.nan
    return float(text)


def _construct_int(loader: Any, node: yaml.ScalarNode) -> int:
    return core_int(str(loader.construct_scalar(node)))


def _construct_float(loader: Any, node: yaml.ScalarNode) -> float:
    return core_float(str(loader.construct_scalar(node)))


_RESOLVER_11 = yaml.resolver.Resolver()


# YAML 1.1's boolean type (https://yaml.org/type/bool.html) also has y/Y/n/N, which PyYAML leaves out
_SHORT_BOOLS = {"y": True, "Y": True, "n": False, "N": False}


def yaml11_reading(text: str) -> tuple[bool, Any]:
    """(whether a YAML 1.1 reader turns the plain scalar `text` into a non-string, that value)."""
    if text in _SHORT_BOOLS:
        return True, _SHORT_BOOLS[text]
    if _RESOLVER_11.resolve(yaml.ScalarNode, text, (True, False)) == STR:
        return False, text
    try:
        return True, yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, OverflowError):
        return False, text


def differs(value_12: Any, text: str) -> Any | None:
    """The YAML 1.1 value of the plain scalar `text` when it is not what 1.2 read (`value_12`), else None.

    None means "no difference"; a 1.1 null is reported as the string 'null' reading below."""
    typed, value_11 = yaml11_reading(text)
    if not typed:  # 1.1 reads a string: a difference only when 1.2 read something else (`1e3`)
        return None if isinstance(value_12, str) else _Shown(text)
    same_type = type(value_11) is type(value_12)
    if same_type and (value_11 == value_12 or (isinstance(value_11, float) and math.isnan(value_11)
                                              and math.isnan(value_12))):
        return None
    return _Shown(value_11)


class _Shown:
    """A 1.1 value wrapped so that None (a 1.1 null) is still a difference."""

    def __init__(self, value: Any) -> None:
        self.value = value


def describe(value: Any) -> str:
    """How a value reads in a message: the string "NO", false, 8, the date 2024-01-01, null."""
    if isinstance(value, _Shown):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'the string "{value}"'
    if isinstance(value, (datetime.date, datetime.datetime)):
        return f"the {'timestamp' if isinstance(value, datetime.datetime) else 'date'} {value.isoformat()}"
    return repr(value)


def note_message(text: str, value_12: Any, value_11: Any) -> str:
    return (f"{text!r} is {describe(value_12)} (YAML 1.2); a YAML 1.1 tool would read {describe(value_11)}")


NOTE_HINT = "quote it to make that explicit"
