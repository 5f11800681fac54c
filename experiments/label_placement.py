"""Point labels that do not collide: a greedy placement measured with matplotlib's renderer.

Each label tries a fixed list of offsets around its point (close ones first, then farther ones with a leader line)
and takes the first whose text box stays inside the axes and overlaps neither another label nor an obstacle (the
point markers, other texts); "soft" obstacles (error bars) are avoided where any offset allows, else crossed. A
label that fits nowhere is left out (the legend still names the point); the order of the points and of the offsets
is fixed, so the placement is deterministic.
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

from matplotlib.text import Text
from matplotlib.transforms import Bbox

# (dx, dy) in points, with the text alignment that keeps the box on the far side of the point.
NEAR = [(5, 4), (5, -4), (-5, 4), (-5, -4), (0, 7), (0, -7), (8, 0), (-8, 0)]
FAR = [(dx * k, dy * k) for k in (2.5, 4.0, 6.0) for dx, dy in NEAR]


def _alignment(dx: float, dy: float) -> Tuple[str, str]:
    ha = "left" if dx > 0 else ("right" if dx < 0 else "center")
    va = "bottom" if dy > 0 else ("top" if dy < 0 else "center")
    return ha, va


def marker_box(ax, x: float, y: float, size_pt: float) -> Bbox:
    """The display-space square that a marker of ``size_pt`` points covers at data point (x, y)."""
    px, py = ax.transData.transform((x, y))
    half = size_pt * ax.figure.dpi / 72 / 2
    return Bbox.from_extents(px - half, py - half, px + half, py + half)


def place_labels(ax, points: Sequence[Tuple[float, float]], texts: Sequence[str], obstacles: Sequence[Bbox] = (),
                 color: Sequence[str] = (), fontsize: float = 7.5, soft: Sequence[Bbox] = ()) -> List:
    """Annotate ``points`` with ``texts`` where they fit; returns the annotations placed (one per fitted label).

    ``obstacles`` are never covered; ``soft`` ones (error bars) are avoided when some offset allows it. Call after
    the figure's layout is final (the boxes are measured in display space).
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    taken: List[Bbox] = list(obstacles)
    placed = []
    for i, ((x, y), text) in enumerate(zip(points, texts)):
        tries = [(j, dx, dy, avoid_soft) for avoid_soft in (True, False) for j, (dx, dy) in enumerate(NEAR + FAR)]
        for j, dx, dy, avoid_soft in tries:
            ha, va = _alignment(dx, dy)
            far = j >= len(NEAR)
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                              fontsize=fontsize, color=color[i] if color else "black", annotation_clip=False,
                              arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 0,
                                          "shrinkB": 3} if far else None)
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            fits = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0 and box.y1 <= frame.y1
                    and not any(box.overlaps(t) for t in taken)
                    and not (avoid_soft and any(box.overlaps(t) for t in soft)))
            if fits:
                taken.append(box)
                placed.append(ann)
                break
            ann.remove()
    return placed
