"""The local home is private to its user: folders 0700, files 0600.

The home holds the ledger, the warehouse, the run logs and the buckets' data (customer records,
quarantined raw rows). With the usual umask 022 it came out 0755 / 0644: readable by every account
on the machine. Many processes write into it (the CLI, the detached supervisor, each step, the
scheduler daemon, DuckDB and SQLite themselves), so instead of a chmod after every write we set
the process umask to also clear group and other bits; child processes inherit it, so everything
a run writes is private too. The home itself is created 0700. An existing home keeps the mode
its owner gave it (a team may share one on purpose).
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_BITS = 0o077


def private_umask() -> None:
    """Make every file and folder this process (and its children) creates private to the user."""
    current = os.umask(PRIVATE_BITS)  # os.umask can only be read by setting it
    os.umask(current | PRIVATE_BITS)


def private_home(home: Path) -> Path:
    """Tighten the umask and create `home` (and missing parents) as 0700 folders; returns `home`."""
    private_umask()
    home = Path(home)
    if not home.exists():
        try:
            home.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:
            pass  # a read-only parent: the command that writes will say so
    return home
