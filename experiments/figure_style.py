"""The house style of the result figures (``tools.plots``): fixed rcParams, one colour and marker per method,
padded axis limits, the title that says what a figure shows, and a byte-reproducible save.

Every figure is drawn inside :func:`figure_style` (matplotlib's default style plus a few overrides, whatever the
user's matplotlibrc says) and written by :func:`save`, which strips the dates and version strings that matplotlib
otherwise embeds (PNG ``Software``, PDF ``CreationDate`` / ``Producer``, SVG ``Date`` and random ids), so the
same inputs give the same bytes.
"""
from __future__ import annotations

import contextlib
import textwrap
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from experiments.protocols import METHODS  # noqa: E402
from experiments.results import AVERAGE, ResultsError, Row  # noqa: E402

FORMATS = (".png", ".pdf", ".svg")
DPI = 150
RC = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs on every machine
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
    "svg.hashsalt": "prompt-learning-figures",  # deterministic SVG element ids
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
}
METADATA = {".png": {"Software": None}, ".pdf": {"CreationDate": None, "Producer": None, "Creator": None},
            ".svg": {"Date": None, "Creator": None}}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "p", "8")
ZERO_SHOT_STYLE = {"color": "black", "marker": "*", "markersize": 11}


@contextlib.contextmanager
def figure_style() -> Iterator[None]:
    """matplotlib's default style with :data:`RC` on top, independent of the user's matplotlibrc."""
    with plt.style.context("default"), plt.rc_context(RC):
        yield


def check_out(out: Path) -> Path:
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise ResultsError(f"--out must end in .png, .pdf or .svg (the figure format); got {out}")
    return out


def save(fig, out: Path) -> Path:
    """Write ``fig`` (format from the extension) without dates or version strings; close it."""
    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(out, dpi=DPI, bbox_inches="tight", pad_inches=0.05, metadata=METADATA[out.suffix.lower()])
    finally:
        plt.close(fig)
    return out


def is_zero_shot(trainer: str) -> bool:
    return trainer in METHODS and METHODS[trainer].zero_shot


def method_styles(labels: Sequence[str], trainers: Dict[str, str]) -> Dict[str, dict]:
    """A fixed colour and marker per method label, in the given order; zero-shot methods are a black star."""
    styles, i = {}, 0
    for label in labels:
        if is_zero_shot(trainers.get(label, "")):
            styles[label] = dict(ZERO_SHOT_STYLE)
        else:
            styles[label] = {"color": f"C{i % 10}", "marker": MARKERS[i % len(MARKERS)], "markersize": 6}
            i += 1
    return styles


def ordered_methods(rows: Sequence[Row]) -> Tuple[List[str], Dict[str, str]]:
    """Method labels, zero-shot first, then in the order of the rows; and each label's trainer."""
    trainers = {r.label: r.trainer for r in rows}
    labels = list(dict.fromkeys(r.label for r in rows))
    return sorted(labels, key=lambda m: not is_zero_shot(trainers[m])), trainers


def padded_limits(values: Iterable[float], fraction: float = 0.08, minimum: float = 1.0) -> Tuple[float, float]:
    """``(lo, hi)`` around the finite values, with ``fraction`` of their range (at least ``minimum``) each side."""
    finite = [v for v in values if v == v and abs(v) != float("inf")]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    pad = max((hi - lo) * fraction, minimum)
    return lo - pad, hi + pad


def seed_std(cell) -> float:
    """A cell's std over seeds for an error bar: 0 for one seed and for derived numbers (HM, averages)."""
    return cell.std if cell.std is not None and cell.n > 1 else 0.0


def panel_title(dataset: str, n_datasets: int = 0) -> str:
    return f"Average over {n_datasets} datasets" if dataset == AVERAGE else dataset


def seeds_of(rows: Iterable[Row]) -> List[int]:
    return sorted({s for r in rows if not r.is_average for c in r.cells.values() for s in c.seeds})


def describe(rows: Sequence[Row], extra: Optional[str] = None) -> str:
    """The second title line: backbone(s), seeds and what the marks are."""
    backbones = sorted({r.backbone for r in rows if r.backbone})
    backbone = (f"backbone {backbones[0]}" if len(backbones) == 1 else
                f"backbones {', '.join(backbones)}" if backbones else "backbone not recorded")
    seeds = seeds_of(rows)
    counts = {min(c.n for k, c in r.cells.items() if k != "hm") for r in rows if not r.is_average and r.cells}
    seed_text = (f"seeds {' '.join(map(str, seeds))}" if seeds else "seeds not recorded") + \
        (" (not all methods have every seed)" if len(counts) > 1 else "")
    return " · ".join(x for x in (backbone, seed_text, extra) if x)


def set_title(fig, headline: str, caption: str, fontsize: float = 9.5) -> None:
    """The figure title: a headline and a caption, wrapped to the figure's width."""
    chars = max(40, int(fig.get_figwidth() * 72 / (fontsize * 0.55)))
    fig.suptitle("\n".join(textwrap.wrap(headline, chars) + textwrap.wrap(caption, chars)), fontsize=fontsize)


def legend_below(fig, handles, labels) -> None:
    """One figure legend under the panels (never over the title or the data)."""
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), frameon=False)
