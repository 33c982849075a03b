"""Process liveness, shared by every layer that must tell a live holder from a dead one.

Kept at the bottom of the import graph (it imports only the standard library), so backends and
the core can both use it without importing each other.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int | None) -> bool:
    """True if the process exists and is not a zombie (a zombie has already ended)."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
