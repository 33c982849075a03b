"""The "where the data is" block, printed by `status` and at the end of the demo (one function)."""

from __future__ import annotations

from typing import Any

from funnelops.cli.context import Console, esc


def print_where(console: Console, where: dict[str, Any]) -> None:
    """Warehouse, datasets, refined tables, quarantine and one query to start from."""
    console.print("[bold]Where the data is[/]")
    console.print(f"  warehouse:      {esc(where['warehouse'])}")
    if where.get("datasets"):
        console.print(f"  datasets:       {esc(', '.join(where['datasets']))}")
    if where.get("refined_tables"):
        console.print(f"  refined tables: {esc(', '.join(where['refined_tables']))}")
    if where.get("quarantine"):
        console.print(f"  quarantine:     {esc(where['quarantine'])}")
    if where.get("example_query"):
        console.print(f"  try:            {esc(where['example_query'])}",
                      "                  (`funnelops tables` lists every table with its rows and last period)")
