"""The command line before typer reads it: global flags accepted after the command.

click binds an option to the command it is declared on, so `funnelops status --json` was an error
("No such option") unless `status` declared its own `--json`. Rather than declaring every global
flag on every command, `main()` moves these flags to the front, where the root callback reads
them. The walk follows the command tree so that the value of an option (`--stage X`) is never
taken for a flag, and it stops at `--`: what follows is an argument, whatever it looks like.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

GLOBAL_FLAGS = ("--json", "--debug", "--no-color", "--dry-run")
# global options with a value, hoisted with it (`funnelops plan --env prod`, `validate --env=prod`)
GLOBAL_OPTIONS = ("--env",)


def _takes_value(command: Any, token: str) -> bool:
    """Whether `token` (an option of `command`, without `=value`) consumes the next word."""
    for param in getattr(command, "params", ()):
        opts = list(getattr(param, "opts", ())) + list(getattr(param, "secondary_opts", ()))
        if token in opts and getattr(param, "param_type_name", "") == "option":
            return not getattr(param, "is_flag", False) and not getattr(param, "count", False)
    return False


def _subcommand(command: Any, token: str) -> Any:
    commands = getattr(command, "commands", None)
    return commands.get(token) if isinstance(commands, dict) else None


def hoist_global_flags(args: Sequence[str], command: Any) -> list[str]:
    """`args` with every global flag (and global option with its value) found before `--` moved to the
    front (flags once each, in order)."""
    hoisted: list[str] = []
    rest: list[str] = []
    current = command
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            rest.extend(args[i:])
            break
        if token in GLOBAL_FLAGS:
            if token not in hoisted:
                hoisted.append(token)
        elif current is not command and token.split("=", 1)[0] in GLOBAL_OPTIONS \
                and not _takes_value(current, token.split("=", 1)[0]):
            width = 1 if "=" in token else 2
            hoisted.extend(args[i:i + width])
            i += width
            continue
        elif token.startswith("-") and "=" not in token and _takes_value(current, token):
            rest.extend(args[i:i + 2])  # the option and its value, whatever the value looks like
            i += 2
            continue
        else:
            sub = None if token.startswith("-") else _subcommand(current, token)
            current = sub or current
            rest.append(token)
        i += 1
    return hoisted + rest


def detailed_exitcode_requested(args: Sequence[str]) -> bool:
    """`plan --detailed-exitcode` (before any `--`): every error then exits 1, changes exit 2."""
    before = list(args)[:list(args).index("--")] if "--" in args else list(args)
    return "--detailed-exitcode" in before
