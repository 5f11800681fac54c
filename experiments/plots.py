"""Figures from run directories (matplotlib, Agg; the format follows the extension: .png, .pdf or .svg).

    python -m tools.plots base2new OUTPUT_DIR --out b2n.png              # trade-off scatter: new vs base, HM lines
    python -m tools.plots base2new OUTPUT_DIR --out b2n.png --view bars  # base / new / HM bars, zoomed y axes
    python -m tools.plots fewshot OUTPUT_DIR --out fewshot.pdf           # accuracy vs shots, shaded ±1 std
    python -m tools.plots curves RUN_DIR [RUN_DIR ...] --out curves.png  # metrics.jsonl per epoch
    ... --compare reported                                               # published numbers as hollow markers

The numbers are those of ``experiments.results`` (means and population std over seeds; the base-to-new Average is the
mean over datasets of base and of new, its HM the HM of those means). Every figure states in its title the
dataset(s), the backbone and the seeds; the style is fixed and the files carry no dates, so the same runs give
byte-identical figures. The base-to-new figures are described in :mod:`tools.base2new_plot`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from engine.run_results import RESULTS_FILE
from experiments.base2new_plot import plot_base2new
from experiments.figure_style import (check_out, describe, figure_style, is_zero_shot, legend_below, method_styles,
                                      ordered_methods, padded_limits, panel_title, save, seed_std, set_title)
from experiments.results import AVERAGE, ResultsError, Summary

import matplotlib.pyplot as plt  # noqa: E402  (figure_style chose the Agg backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

__all__ = ["plot_base2new", "plot_fewshot", "plot_curves", "read_metrics"]

NOT_PER_EPOCH = {"epoch", "time_s"}
FIRST_KEYS = ("loss", "acc", "test_acc")
CURVE_TITLES = {"loss": "loss (training)", "acc": "accuracy on training batches (%)", "test_acc": "test accuracy (%)",
                "lr": "learning rate"}


def _rows(summary: Summary, protocol: str) -> list:
    rows = summary.rows.get(protocol)
    if not rows:
        raise ResultsError(f"No {protocol} results to plot.")
    return rows


def _zero_shot_reference(summary: Summary, dataset: str, datasets: Sequence[str]) -> Optional[float]:
    """Zero-shot CLIP's accuracy on ``dataset`` (zeroshot protocol runs); on the Average panel the mean over the
    panel's datasets when every one of them has it."""
    zero = {r.dataset: r.cells["acc"].mean for r in summary.rows.get("zeroshot", []) if is_zero_shot(r.trainer)}
    if dataset != AVERAGE:
        return zero.get(dataset)
    members = [d for d in datasets if d != AVERAGE]
    return float(np.mean([zero[d] for d in members])) if members and all(d in zero for d in members) else None


def _legend_outside(fig, axes) -> None:
    """One figure legend, right of the panels, with each label once."""
    handles: Dict[str, object] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, h)
    legend_below(fig, list(handles.values()), list(handles))


def draw_fewshot(summary: Summary, title: str = "Few-shot classification: accuracy against shots per class"):
    """One panel per dataset (Average first): a line per method with a ±1 std band over seeds; zero-shot CLIP
    (zeroshot protocol runs, when present) as a dotted line; published numbers as hollow markers."""
    rows = _rows(summary, "fewshot")
    labels, trainers = ordered_methods(rows)
    styles = method_styles(labels, trainers)
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    shots = sorted({r.shots for r in rows})
    cols = min(4, len(datasets))
    nrows = math.ceil(len(datasets) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.0 * nrows), squeeze=False, layout="constrained")
    for ax, dataset in zip(axes.flat, datasets):
        extent: List[float] = []
        for label in labels:
            pts = sorted((r for r in rows if r.dataset == dataset and r.label == label), key=lambda r: r.shots)
            if not pts:
                continue
            st = styles[label]
            k = [r.shots for r in pts]
            mean = np.array([r.cells["acc"].mean for r in pts])
            std = np.array([seed_std(r.cells["acc"]) for r in pts])
            ax.plot(k, mean, marker=st["marker"], color=st["color"], markersize=4, label=label)
            if std.any():
                ax.fill_between(k, mean - std, mean + std, color=st["color"], alpha=0.18, lw=0, gid="std-band")
            extent += [*(mean - std), *(mean + std)]
            reported = [(r.shots, r.reported["acc"]["value"]) for r in pts if "acc" in r.reported]
            if reported:
                ax.plot(*zip(*reported), ls="none", marker=st["marker"], markerfacecolor="none",
                        markeredgecolor=st["color"], markersize=6, gid="reported", label="published (hollow)")
                extent += [v for _, v in reported]
        reference = _zero_shot_reference(summary, dataset, datasets)
        if reference is not None:
            ax.axhline(reference, color="black", lw=0.9, ls=":", gid="zero-shot-ref", label="zero-shot CLIP")
            extent.append(reference)
        ax.set_ylim(*padded_limits(extent))
        ax.set_xscale("log", base=2)
        ax.set_xticks(shots)
        ax.set_xticklabels([str(k) for k in shots])
        ax.minorticks_off()
        ax.set_title(panel_title(dataset, next((r.n_datasets for r in rows if r.dataset == dataset), 0)))
        ax.set_xlabel("shots per class")
        ax.set_ylabel("accuracy (%)")
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    _legend_outside(fig, list(axes.flat))
    where = datasets[0] if len(datasets) == 1 else f"{len([d for d in datasets if d != AVERAGE])} datasets"
    set_title(fig, f"{title} ({where})", describe(rows, "lines: mean, bands: ±1 std over seeds"))
    return fig


def plot_fewshot(summary: Summary, out: Path) -> Path:
    check_out(out)
    with figure_style():
        return save(draw_fewshot(summary), out)


def read_metrics(run_dir: Path) -> List[dict]:
    """The per-epoch records of ``<run_dir>/metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ResultsError(f"No training metrics: expected {path} (written by train.py during training).")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_info(run_dir: Path) -> dict:
    """Trainer, dataset, backbone and seed from ``<run_dir>/results.json`` (empty for a run still training)."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        res = json.loads(path.read_text()) if path.is_file() else {}
    except ValueError:
        return {}
    return {k: res[k] for k in ("trainer", "dataset", "backbone", "seed") if res.get(k) is not None}


def _curve_groups(run_dirs: Sequence[Path], labels: Optional[Sequence[str]]) -> Tuple[Dict[str, list], List[dict]]:
    infos = [run_info(d) for d in run_dirs]
    several = len({i.get("dataset") for i in infos}) > 1
    groups: Dict[str, List[List[dict]]] = {}
    for i, run_dir in enumerate(run_dirs):
        info = infos[i]
        if labels:
            label = labels[i]
        elif "trainer" in info:
            label = info["trainer"] + (f" ({info.get('dataset', '?')})" if several else "")
        else:
            label = str(run_dir)
        groups.setdefault(label, []).append(read_metrics(run_dir))
    return groups, infos


def draw_curves(run_dirs: Sequence[Path], labels: Optional[Sequence[str]] = None):
    """One panel per numeric metric (loss, accuracy, lr, other terms) against the epoch. Runs sharing a label (by
    default: the same trainer, i.e. the seeds of one method) are drawn as their mean with a ±1 std band."""
    groups, infos = _curve_groups(run_dirs, labels)
    keys = list(dict.fromkeys(k for runs in groups.values() for recs in runs for rec in recs for k, v in rec.items()
                              if k not in NOT_PER_EPOCH and isinstance(v, (int, float)) and not isinstance(v, bool)))
    keys.sort(key=lambda k: (FIRST_KEYS.index(k) if k in FIRST_KEYS else len(FIRST_KEYS), k == "lr"))
    if not keys:
        raise ResultsError("The metrics.jsonl files hold no numeric metric to plot.")
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.8 * cols, 2.9 * nrows), squeeze=False, layout="constrained")
    for ax, key in zip(axes.flat, keys):
        for i, (label, runs) in enumerate(groups.items()):
            per_epoch: Dict[int, List[float]] = {}
            for recs in runs:
                for r in recs:
                    if key in r:
                        per_epoch.setdefault(int(r["epoch"]), []).append(float(r[key]))
            if not per_epoch:
                continue
            epochs = sorted(per_epoch)
            mean = np.array([np.mean(per_epoch[e]) for e in epochs])
            std = np.array([np.std(per_epoch[e]) for e in epochs])
            ax.plot(epochs, mean, marker=".", color=f"C{i % 10}", label=label + (f" ({len(runs)} runs)"
                                                                                  if len(runs) > 1 else ""))
            if std.any():
                ax.fill_between(epochs, mean - std, mean + std, color=f"C{i % 10}", alpha=0.18, lw=0, gid="std-band")
        ax.set_title(CURVE_TITLES.get(key, key))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key == "lr":
            ax.set_yscale("log")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    _legend_outside(fig, list(axes.flat))
    datasets = sorted({i["dataset"] for i in infos if "dataset" in i}) or ["dataset not recorded"]
    backbones = sorted({i["backbone"] for i in infos if "backbone" in i})
    seeds = sorted({i["seed"] for i in infos if "seed" in i})
    set_title(fig, f"Training curves per epoch ({', '.join(datasets)})",
              " · ".join([f"backbone {', '.join(backbones)}" if backbones else "backbone not recorded",
                               f"seeds {' '.join(map(str, seeds))}" if seeds else "seeds not recorded",
                          "runs with one label: mean, band ±1 std"]))
    return fig


def plot_curves(run_dirs: Sequence[Path], out: Path, labels: Optional[Sequence[str]] = None) -> Path:
    check_out(out)
    if labels and len(labels) != len(run_dirs):
        raise ResultsError(f"--labels needs one label per run directory ({len(run_dirs)}).")
    with figure_style():
        return save(draw_curves(run_dirs, labels), out)
