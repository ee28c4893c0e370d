"""A drawn figure and the PDF's figure resolution, apart from the drawing code: a report
whose figures all come from the figure cache never imports matplotlib or seaborn."""

from __future__ import annotations

import re
from dataclasses import dataclass

PNG_DPI = 120  # the PDF's figures, drawn at this resolution
PDF_SCALE = 0.5  # and shown at this fraction of their size: 240 dpi as printed


@dataclass(frozen=True)
class Drawn:
    """One figure twice: SVG for the HTML report and reports/figures/, PNG for the PDF
    (WeasyPrint draws SVG in Python: the figures' SVG took longer to lay out than the whole
    rest of the PDF); width_pt is the SVG's width, the size the PNG is shown at. The PNG
    is drawn only for a PDF: it adds about half again to the drawing time."""

    svg: str
    png: bytes | None

    @property
    def width_pt(self) -> float:
        return float(re.match(r'<svg[^>]*?\swidth="([\d.]+)pt"', self.svg).group(1))
