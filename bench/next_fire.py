"""The `next_fire_10k_s` figure of bench/force.py: next fire of 10,000 schedulers.

    python bench/next_fire.py      (prints the figures of both populations, cold and parsed)

Two populations, because caching makes them cost very different amounts:
* ``shared``: the project's 4 seed crons with a random minute (<= 240 distinct expressions), one
  time zone: what real projects look like;
* ``distinct``: random minute, hour, weekday or day of month, and one of 4 time zones: almost every
  scheduler has its own (cron, tz), so nothing is shared.

``cold=True`` (the default) empties the parse and result caches first, so the figure includes
parsing, as in a freshly started ``scheduler list``.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import datetime, UTC
from pathlib import Path

if __name__ == "__main__":  # run as a script: import funnelops from this checkout's src
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from funnelops.scheduler import cron

SEED_CRONS = ("{m} 6 * * *", "{m} 7 1 * *", "{m} 8 1 1 *", "{m} 9 2 * *")
ZONES = ("America/Bogota", "America/New_York", "Europe/Riga", "Etc/UTC")


def population(n: int, kind: str = "distinct", seed: int = 0) -> list[tuple[str, str]]:
    """`n` (cron, time zone) pairs of the `kind` population, the same for the same seed."""
    rng = random.Random(seed)
    if kind == "shared":
        return [(rng.choice(SEED_CRONS).format(m=rng.randrange(60)), "America/Bogota") for _ in range(n)]
    out = []
    for _ in range(n):
        m, h = rng.randrange(60), rng.randrange(24)
        shape = rng.randrange(4)
        if shape == 0:
            expr = f"{m} {h} * * *"
        elif shape == 1:
            expr = f"{m} {h} * * {rng.randrange(7)}"
        elif shape == 2:
            expr = f"{m} {h} {rng.randrange(1, 29)} * *"
        else:
            expr = f"{m} {h} {rng.randrange(1, 29)} {rng.randrange(1, 13)} *"
        out.append((expr, rng.choice(ZONES)))
    return out


def bench_next_fire(n: int = 10_000, *, kind: str = "distinct", cold: bool = True, seed: int = 0,
                    after: datetime | None = None) -> float:
    """Seconds to compute ``next_fire`` for ``n`` schedulers (population built outside the timing)."""
    items = population(n, kind, seed)
    after = after or datetime.now(UTC)
    if cold:
        cron.compile_cron.cache_clear()
        cron._parse_field.cache_clear()
        cron._next_fire_utc.cache_clear()
    start = time.perf_counter()
    for expr, tz in items:
        cron.next_fire(expr, tz, after)
    return time.perf_counter() - start


if __name__ == "__main__":
    import json

    figures = {}
    for kind in ("shared", "distinct"):
        for cold in (True, False):
            runs = []
            for _ in range(5):
                if not cold:
                    bench_next_fire(kind=kind, cold=True)
                    cron._next_fire_utc.cache_clear()  # keep the parse cache, drop results
                runs.append(bench_next_fire(kind=kind, cold=cold))
            figures[f"{kind}_{'cold' if cold else 'parsed'}_s"] = round(min(runs), 4)
    print(json.dumps(figures))
