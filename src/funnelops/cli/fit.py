"""Tables that fit the terminal: drop the least important columns, never cut an id or a number.

Rich squeezes every column of a table that is too wide, so at 80 columns `runs` printed
`1,23…` for a row count and at 60 it dropped the run id altogether. Here each column says how
much it matters (`keep`: lower is kept longer) and whether its text may be cut (`shrink`:
names only). Columns are dropped, least important first, until the natural widths fit; only
then may a `shrink` column be cut (with an ellipsis), down to its `min_width`. Numbers and ids
are never cut: they are set to their full width.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text

GAP = 2  # spaces between columns (padding (0, 1), no edge padding)


@dataclass(frozen=True)
class Col:
    name: str
    keep: int = 50           # importance: the highest are dropped first; 0 is never dropped
    justify: str = "left"
    shrink: bool = False     # may be cut with an ellipsis (names), never numbers or ids
    min_width: int = 6


def _plain(cell: str | Text) -> str:
    return cell.plain if isinstance(cell, Text) else Text.from_markup(cell).plain


def fit_columns(cols: list[Col], rows: list[list[str | Text]], width: int, shrink_first: bool = False) -> list[int]:
    """The indexes of the columns shown at `width`, in their original order.

    `shrink_first`: count on cutting the `shrink` columns before dropping any column (a query's
    columns are all wanted); otherwise columns are dropped first and names cut only after
    (the `runs` table: a whole workflow name matters more than the start time)."""
    natural = [max([len(c.name)] + [len(_plain(r[i])) for r in rows]) for i, c in enumerate(cols)]
    shown = list(range(len(cols)))

    def need(idx: list[int]) -> int:
        total = sum(natural[i] for i in idx) + GAP * (len(idx) - 1)
        # with shrink_first (or nothing left to drop): what it takes once names are cut to their minimum
        spare = sum(max(0, natural[i] - cols[i].min_width) for i in idx if cols[i].shrink)
        return total - spare if shrink_first or all(cols[i].keep == 0 for i in idx) else total

    for i in sorted(range(len(cols)), key=lambda i: -cols[i].keep):
        if need(shown) <= width or cols[i].keep == 0:
            break
        shown.remove(i)
    return shown


def fit_table(cols: list[Col], rows: list[list[str | Text]], width: int, *, shrink_first: bool = False,
              header_style: str = "bold") -> tuple[Table, list[str]]:
    """A rich Table of the columns that fit `width`, and the names of the columns left out.

    Every column gets an explicit width (rich would otherwise squeeze numbers too): its natural
    width, except `shrink` columns, cut widest first, down to their minimum, until the row fits."""
    shown = fit_columns(cols, rows, width, shrink_first)
    widths = {i: max([len(cols[i].name)] + [len(_plain(r[i])) for r in rows]) for i in shown}
    excess = sum(widths.values()) + GAP * (len(shown) - 1) - width
    while excess > 0:
        cuttable = [i for i in shown if cols[i].shrink and widths[i] > cols[i].min_width]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    table = Table(box=None, header_style=header_style, pad_edge=False, padding=(0, 1))
    for i in shown:
        c = cols[i]
        table.add_column(c.name, justify=c.justify,  # type: ignore[arg-type]
                         no_wrap=True, overflow="ellipsis", width=widths[i])
    for r in rows:
        table.add_row(*(r[i] for i in shown))
    return table, [cols[i].name for i in range(len(cols)) if i not in shown]
