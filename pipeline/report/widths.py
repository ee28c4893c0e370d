"""Column widths for the PDF's appendix tables, from the advance widths of the font they
are set in: a table that carries its widths is laid out by WeasyPrint in a fixed layout,
without measuring every cell first.

The widths are those the automatic layout would choose: each column its longest line
when they all fit the page, else its longest word plus a share of the rest. A table
whose longest words alone overflow the page, or a machine where fontconfig cannot name
the font's file, keeps the automatic layout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable
from functools import cache

FONT = "DejaVu Sans"  # the report's first font-family
TABLE_PT = 8.0  # table.results' font size
PAD_EM = 9.0 / TABLE_PT  # 6px of padding each side of a cell, 9pt in all
SLACK_EM = 0.1  # per column: kerning, and rounding to the layout's pixels
PAGE_EM = 186 * 72 / 25.4 / TABLE_PT  # A4 between the 12 mm margins, in the table's em

Measure = Callable[[str], float]


@cache
def _measures() -> tuple[Measure, Measure] | None:
    """The width in em of a text in the regular and in the bold face, or None."""
    try:
        from fontTools.ttLib import TTFont

        faces = []
        for style in ("", ":bold"):
            found = subprocess.run(["fc-match", "-f", "%{file}", FONT + style],
                                   capture_output=True, text=True, timeout=10)
            faces.append(TTFont(found.stdout.strip(), lazy=True))
    except (ImportError, OSError, subprocess.SubprocessError):
        return None
    return tuple(_measure(face) for face in faces)


def _measure(face) -> Measure:
    cmap, advance = face.getBestCmap(), face["hmtx"].metrics
    unknown = advance[".notdef"][0]
    em = face["head"].unitsPerEm

    def width(text: str) -> float:
        return sum(advance[cmap[ord(c)]][0] if ord(c) in cmap else unknown
                   for c in text) / em
    return width


def fixed_layout(html: str, columns: Iterable[str], cells: list[list[str]]) -> str:
    """The table `html` (pandas' to_html) with a fixed layout and one width per column;
    cells: each column's texts."""
    measures = _measures()
    if measures is None:
        return html
    regular, bold = measures
    longest, widest = [], []  # per column: its longest line, its longest word
    for name, texts in zip(columns, cells):
        words = [w for t in texts for w in t.split()]
        longest.append(max([bold(name)] + [regular(t) for t in texts]))
        widest.append(max([bold(w) for w in name.split()] + [regular(w) for w in words]))
    longest = [w + PAD_EM + SLACK_EM for w in longest]
    widest = [w + PAD_EM + SLACK_EM for w in widest]
    if sum(widest) > PAGE_EM:
        return html  # too wide at its narrowest: the automatic layout, as before
    room = sum(longest) - sum(widest)
    share = 1.0 if sum(longest) <= PAGE_EM else (PAGE_EM - sum(widest)) / room
    ems = [w + share * (n - w) for n, w in zip(longest, widest)]
    cols = "".join(f'<col style="width: {w:.3f}em">' for w in ems)
    tag, rest = html.split(">", 1)
    return (f'{tag} style="table-layout: fixed; width: {sum(ems):.3f}em">'
            f"<colgroup>{cols}</colgroup>{rest}")
