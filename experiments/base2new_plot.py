"""Base-to-new figures: the trade-off scatter (default) and the bar view.

Trade-off scatter (one panel per dataset, the Average first, in a grid of up to 4 columns): x = base accuracy,
y = new accuracy, one point per method at its mean over seeds with ±1 std error bars (population std, as
``experiments.results``), dashed HM iso-lines HM = 2·B·N / (B + N) = h (the H of CoCoOp, Zhou et al., CVPR 2022),
i.e. N = h·B / (2B - h), and zero-shot CLIP as a black star with a dotted cross through it (points up and to the
right of the cross beat it on both). The Average panel is the mean over datasets of base and of new (no error
bars: that mean is not over seeds). With the published numbers attached (``--compare reported``), each method's
published point is a hollow marker of its colour.

Bar view (``--view bars``): Base, New and HM panels, datasets along x, one bar per method with ±1 std error bars,
the y axis zoomed to the data (bars do not start at 0: read the tick labels).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from matplotlib.ticker import MaxNLocator

from experiments.figure_style import (check_out, describe, figure_style, is_zero_shot, legend_below, method_styles,
                                      ordered_methods, padded_limits, panel_title, save, seed_std, set_title)
from experiments.label_placement import marker_box, place_labels
from experiments.results import AVERAGE, ResultsError, Row, Summary, harmonic_mean

import matplotlib.pyplot as plt  # noqa: E402  (figure_style chose the Agg backend)
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

PANEL_IN = 3.6
MAX_COLS = 4
ISO_GID = "hm-iso"


def base2new_rows(summary: Summary) -> List[Row]:
    rows = [r for r in summary.rows.get("base2new", []) if "hm" in r.cells]
    if not rows:
        raise ResultsError("No base2new results with both base and new accuracies to plot (run the base2new "
                           "protocol: train_base and test_new folders).")
    return rows


def _std(row: Row, metric: str) -> float:
    return seed_std(row.cells[metric])


def hm_levels(x_lim: Tuple[float, float], y_lim: Tuple[float, float], nbins: int = 5) -> List[float]:
    """Round HM values strictly between the HM of the panel's lower-left and upper-right corners."""
    lo = harmonic_mean(max(x_lim[0], 1e-9), max(y_lim[0], 1e-9))
    hi = harmonic_mean(x_lim[1], y_lim[1])
    ticks = MaxNLocator(nbins=nbins, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    return [float(t) for t in ticks if lo < t < hi]


def iso_curve(level: float, x_lim: Tuple[float, float], num: int = 200) -> Tuple[np.ndarray, np.ndarray]:
    """Points (B, N) with HM(B, N) = level for B in ``x_lim`` (N = h·B / (2B - h), defined for B > h / 2)."""
    start = max(x_lim[0], level / 2 * 1.0005)
    x = np.linspace(start, x_lim[1], num)
    return x, level * x / (2 * x - level)


def _draw_iso_lines(ax, x_lim, y_lim) -> List:
    boxes = []
    renderer = ax.figure.canvas.get_renderer()
    for level in hm_levels(x_lim, y_lim):
        x, y = iso_curve(level, x_lim)
        ax.plot(x, y, color="0.6", lw=0.8, ls="--", zorder=1, gid=f"{ISO_GID}-{level:g}")
        inside = (y >= y_lim[0]) & (y <= y_lim[1])
        if not inside.any():
            continue
        k = int(np.flatnonzero(inside)[-1])  # the lower-right end of the curve in the panel
        text = ax.text(x[k], y[k], f"HM {level:g}", fontsize=6.5, color="0.45", ha="right", va="bottom",
                       zorder=1, clip_on=True)
        boxes.append(text.get_window_extent(renderer))
    return boxes


def _panel_limits(rows: Sequence[Row]) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    xs, ys = [], []
    for r in rows:
        for metric, out in (("base", xs), ("new", ys)):
            m, s = r.cells[metric].mean, _std(r, metric)
            out += [m - s, m + s]
            if metric in r.reported:
                out.append(r.reported[metric]["value"])
    return padded_limits(xs), padded_limits(ys)


def _errorbar_boxes(ax, row: Row, half_width_px: float = 1.5) -> List[Bbox]:
    """Display boxes of a point's horizontal and vertical error bars (obstacles for the labels)."""
    b, n = row.cells["base"].mean, row.cells["new"].mean
    sb, sn = _std(row, "base"), _std(row, "new")
    boxes = []
    for (x0, y0), (x1, y1) in (((b - sb, n), (b + sb, n)), ((b, n - sn), (b, n + sn))):
        (px0, py0), (px1, py1) = ax.transData.transform([(x0, y0), (x1, y1)])
        if (px0, py0) != (px1, py1):
            boxes.append(Bbox.from_extents(min(px0, px1) - half_width_px, min(py0, py1) - half_width_px,
                                           max(px0, px1) + half_width_px, max(py0, py1) + half_width_px))
    return boxes


def _datasets(rows: Sequence[Row]) -> List[str]:
    return list(dict.fromkeys(r.dataset for r in rows))  # Average first, then the benchmark order (experiments.results)


def draw_tradeoff(summary: Summary, title: str = "Base-to-new trade-off: new against base accuracy"):
    """The trade-off figure (not saved); :func:`plot_base2new` saves it."""
    rows = base2new_rows(summary)
    labels, trainers = ordered_methods(rows)
    styles = method_styles(labels, trainers)
    datasets = _datasets(rows)
    cols = min(MAX_COLS, len(datasets))
    nrows = math.ceil(len(datasets) / cols)
    single = len(datasets) == 1
    size = (5.2, 4.4) if single else (PANEL_IN * cols, PANEL_IN * 0.9 * nrows)
    fig, axes = plt.subplots(nrows, cols, figsize=size, squeeze=False, layout="constrained")
    panels = []
    for ax, dataset in zip(axes.flat, datasets):
        here = [r for r in rows if r.dataset == dataset]
        x_lim, y_lim = _panel_limits(here)
        ax.set_xlim(*x_lim)
        ax.set_ylim(*y_lim)
        n_datasets = here[0].n_datasets
        ax.set_title(panel_title(dataset, n_datasets))
        ax.set_xlabel("base accuracy (%)")
        ax.set_ylabel("new accuracy (%)" if ax.get_subplotspec().is_first_col() else "")
        for row in sorted(here, key=lambda r: labels.index(r.label)):
            st = styles[row.label]
            b, n = row.cells["base"].mean, row.cells["new"].mean
            if is_zero_shot(row.trainer):
                ax.axvline(b, color="0.3", lw=0.7, ls=":", zorder=1, gid="zero-shot-ref")
                ax.axhline(n, color="0.3", lw=0.7, ls=":", zorder=1, gid="zero-shot-ref")
            ax.errorbar(b, n, xerr=_std(row, "base"), yerr=_std(row, "new"), fmt=st["marker"], color=st["color"],
                        markersize=st["markersize"], elinewidth=0.9, capsize=2, zorder=3, label=row.label)
            if "base" in row.reported and "new" in row.reported:
                ax.plot(row.reported["base"]["value"], row.reported["new"]["value"], st["marker"],
                        markersize=st["markersize"], markerfacecolor="none", markeredgecolor=st["color"],
                        markeredgewidth=1.1, zorder=3, gid="reported", label="_reported")
        panels.append((ax, here, x_lim, y_lim))
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    _legend(fig, labels, styles, any(r.reported for r in rows))
    where = datasets[0] if single else f"{len([d for d in datasets if d != AVERAGE])} datasets"
    set_title(fig, f"{title} ({where})",
              describe(rows, "points: mean, bars: ±1 std over seeds; dashed: HM iso-lines"))
    fig.canvas.draw()  # final layout, then freeze it so that the labels' measured boxes stay where they are
    fig.set_layout_engine("none")
    for ax, here, x_lim, y_lim in panels:
        obstacles = _draw_iso_lines(ax, x_lim, y_lim)
        order = sorted(here, key=lambda r: labels.index(r.label))
        obstacles += [marker_box(ax, r.cells["base"].mean, r.cells["new"].mean, styles[r.label]["markersize"] + 2)
                      for r in order]
        place_labels(ax, [(r.cells["base"].mean, r.cells["new"].mean) for r in order], [r.label for r in order],
                     obstacles=obstacles, color=[styles[r.label]["color"] for r in order],
                     soft=[box for r in order for box in _errorbar_boxes(ax, r)])
    return fig


def _legend(fig, labels: Sequence[str], styles: Dict[str, dict], with_reported: bool) -> None:
    handles = [Line2D([], [], ls="none", marker=styles[m]["marker"], color=styles[m]["color"],
                      markersize=styles[m]["markersize"] * 0.9, label=m + (" (reference)" if styles[m]["marker"] == "*"
                                                                          else "")) for m in labels]
    if with_reported:
        handles.append(Line2D([], [], ls="none", marker="o", markerfacecolor="none", markeredgecolor="0.3",
                              label="published (hollow)"))
    legend_below(fig, handles, [h.get_label() for h in handles])


def draw_bars(summary: Summary, title: str = "Base-to-new generalisation"):
    """The bar view (not saved): Base, New and HM panels, ±1 std error bars, y axes zoomed to the data."""
    rows = base2new_rows(summary)
    labels, trainers = ordered_methods(rows)
    styles = method_styles(labels, trainers)
    datasets = _datasets(rows)
    value = {(r.label, r.dataset): r for r in rows}
    width = 0.8 / len(labels)
    x = np.arange(len(datasets))
    fig, axes = plt.subplots(3, 1, figsize=(max(5.0, 0.35 * len(datasets) * len(labels) + 1.5), 7.5), sharex=True,
                             layout="constrained")
    for ax, metric, name in zip(axes, ("base", "new", "hm"), ("Base accuracy (%)", "New accuracy (%)", "HM (%)")):
        extent = []
        for i, label in enumerate(labels):
            members = [value.get((label, d)) for d in datasets]
            means = [m.cells[metric].mean if m else np.nan for m in members]
            errs = [_std(m, metric) if m and metric != "hm" and _std(m, metric) > 0 else np.nan for m in members]
            ax.bar(x + (i - (len(labels) - 1) / 2) * width, means, width, yerr=errs, capsize=1.5,
                   color=styles[label]["color"] if styles[label]["marker"] != "*" else "0.35", label=label,
                   error_kw={"elinewidth": 0.8})
            extent += [m - np.nan_to_num(e) for m, e in zip(means, errs)] + \
                [m + np.nan_to_num(e) for m, e in zip(means, errs)]
        lo, hi = padded_limits(extent, fraction=0.1)
        ax.set_ylim(lo, hi)
        ax.set_ylabel(name)
        ax.grid(axis="x", visible=False)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels([panel_title(d, value[(labels[0], d)].n_datasets if (labels[0], d) in value else 0)
                              if d == AVERAGE else d for d in datasets], rotation=30 if len(datasets) > 3 else 0,
                             ha="right" if len(datasets) > 3 else "center")
    legend_below(fig, *axes[0].get_legend_handles_labels())
    set_title(fig, title, describe(rows, "bars: mean, whiskers: ±1 std over seeds; y axes do not start at 0"))
    return fig


def plot_base2new(summary: Summary, out: Path, view: str = "tradeoff") -> Path:
    """Draw the base-to-new figure (``view``: tradeoff or bars) and write it to ``out``.

    Published numbers are drawn where ``experiments.results.Reported.attach`` put them on the rows.
    """
    check_out(out)
    if view not in ("tradeoff", "bars"):
        raise ResultsError(f"Unknown base2new view {view!r}; choose tradeoff or bars.")
    with figure_style():
        fig = (draw_tradeoff if view == "tradeoff" else draw_bars)(summary)
        return save(fig, out)
