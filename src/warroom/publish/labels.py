"""Greedy text placement for the map: a label is drawn only where it overlaps no other.

Boxes are estimated in display pixels from the text length and font size (DejaVu Sans is
about 0.6 em wide per character), which is enough to keep a map readable without a layout
engine. Each label tries its offset and the mirrored ones (right/left, above/below) at each
of its anchor points; a ``force``\\ d label that finds no free spot is drawn anyway, at the
first spot that stays inside the axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from matplotlib.axes import Axes
from matplotlib.patheffects import withStroke

HALO = [withStroke(linewidth=2.4, foreground="white")]
Box = tuple[float, float, float, float]
_FLIP_H = {"left": "right", "right": "left", "center": "center"}
_FLIP_V = {"bottom": "top", "top": "bottom", "center": "center"}


@dataclass
class Labeler:
    """Places labels on ``ax`` (limits must be final), remembering their boxes."""

    ax: Axes
    boxes: list[Box] = field(default_factory=list)
    pad_px: float = 2.0

    def _box(self, x: float, y: float, text: str, size: float, dx_pt: float, dy_pt: float,
             ha: str, va: str) -> Box:
        px = self.ax.figure.dpi / 72.0
        lines = text.split("\n")
        w = max(len(line) for line in lines) * size * 0.6 * px
        h = len(lines) * size * 1.25 * px
        cx, cy = self.ax.transData.transform((x, y))
        x0 = cx + dx_pt * px - {"left": 0.0, "center": w / 2, "right": w}[ha]
        y0 = cy + dy_pt * px - {"bottom": 0.0, "center": h / 2, "top": h}[va]
        return (x0, y0, x0 + w, y0 + h)

    def _inside(self, box: Box) -> bool:
        a = self.ax.bbox
        return box[0] >= a.x0 and box[2] <= a.x1 and box[1] >= a.y0 and box[3] <= a.y1

    def _free(self, box: Box) -> bool:
        p = self.pad_px
        return self._inside(box) and all(
            box[2] + p < b[0] or b[2] + p < box[0] or box[3] + p < b[1] or b[3] + p < box[1]
            for b in self.boxes)

    def add(self, x: float, y: float, text: str, *, size: float = 7.0, dx_pt: float = 3.0,
            dy_pt: float = 2.0, ha: str = "left", va: str = "bottom", force: bool = False,
            **kw: Any) -> bool:
        """Draw ``text`` near data point (x, y); see :meth:`add_any`."""
        return self.add_any([(x, y)], text, size=size, dx_pt=dx_pt, dy_pt=dy_pt, ha=ha, va=va,
                            force=force, **kw)

    def add_any(self, anchors: Sequence[tuple[float, float]], text: str, *, size: float = 7.0,
                dx_pt: float = 3.0, dy_pt: float = 2.0, ha: str = "left", va: str = "bottom",
                force: bool = False, **kw: Any) -> bool:
        """Draw ``text`` at the first anchor and offset (as given, then mirrored) where it
        overlaps nothing; with ``force`` draw it anyway. Returns whether it was drawn."""
        offsets = [(dx_pt, dy_pt, ha, va), (-dx_pt, dy_pt, _FLIP_H[ha], va),
                   (dx_pt, -dy_pt, ha, _FLIP_V[va]), (-dx_pt, -dy_pt, _FLIP_H[ha], _FLIP_V[va])]
        tries = [(a, o) for a in anchors for o in offsets]
        if not tries:
            return False
        chosen = next((t for t in tries if self._free(self._box(*t[0], text, size, *t[1]))),
                      None)
        if chosen is None:
            if not force:
                return False
            chosen = next((t for t in tries if self._inside(self._box(*t[0], text, size,
                                                                      *t[1]))), tries[0])
        (x, y), (dx, dy, h, v) = chosen
        self.boxes.append(self._box(x, y, text, size, dx, dy, h, v))
        kw.setdefault("path_effects", HALO)
        kw.setdefault("zorder", 20)
        self.ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=h, va=v,
                         fontsize=size, annotation_clip=False, **kw)
        return True

    def reserve(self, x: float, y: float, radius_px: float) -> None:
        """Keep labels off a marker at data point (x, y)."""
        cx, cy = self.ax.transData.transform((x, y))
        self.boxes.append((cx - radius_px, cy - radius_px, cx + radius_px, cy + radius_px))
