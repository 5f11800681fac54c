"""Figures from run directories (matplotlib, Agg backend; the format follows the file extension, PNG or PDF).

    python -m tools.plots base2new OUTPUT_DIR --out b2n.png      # per-dataset base / new / HM bars per method
    python -m tools.plots fewshot OUTPUT_DIR --out fewshot.pdf   # accuracy vs shots, one panel per dataset
    python -m tools.plots curves RUN_DIR [RUN_DIR ...] --out curves.png   # metrics.jsonl per epoch

The numbers are those of ``tools.results`` (means over seeds; the base-to-new Average HM is the HM of the
averaged base and new accuracies).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from tools.results import AVERAGE, ResultsError, Summary, summarize  # noqa: E402

NOT_PER_EPOCH = {"epoch", "time_s"}


def _save(fig, out: Path) -> Path:
    if out.suffix.lower() not in (".png", ".pdf"):
        raise ResultsError(f"--out must end in .png or .pdf, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out


def _rows(summary: Summary, protocol: str) -> list:
    rows = summary.rows.get(protocol)
    if not rows:
        raise ResultsError(f"No {protocol} results to plot.")
    return rows


def plot_base2new(summary: Summary, out: Path) -> Path:
    """Three panels (Base, New, HM); x: datasets then Average; one bar per method."""
    rows = [r for r in _rows(summary, "base2new") if "hm" in r.cells]
    if not rows:
        raise ResultsError("No dataset has both base and new results; nothing to plot.")
    datasets = [d for d in dict.fromkeys(r.dataset for r in rows if not r.is_average)] + \
               ([AVERAGE] if any(r.is_average for r in rows) else [])
    methods = list(dict.fromkeys(r.label for r in rows))
    value = {(r.label, r.dataset): r for r in rows}
    fig, axes = plt.subplots(3, 1, figsize=(max(6.0, 0.9 * len(datasets) * max(1, len(methods)) / 2 + 3), 9),
                             sharex=True)
    width = 0.8 / len(methods)
    x = np.arange(len(datasets))
    for ax, metric, name in zip(axes, ("base", "new", "hm"), ("Base", "New", "HM")):
        for i, method in enumerate(methods):
            heights = [value[(method, d)].cells[metric].mean if (method, d) in value else np.nan for d in datasets]
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, heights, width, label=method)
        ax.set_ylabel(f"{name} (%)" if metric == "hm" else f"{name} accuracy (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(ncol=min(5, len(methods)), fontsize="small", loc="lower left", bbox_to_anchor=(0, 1.02))
    axes[0].set_title("Base-to-new generalisation (mean over seeds)", pad=28)
    axes[-1].set_xticks(x)
    axes[-1].set_xticklabels(["Average" if d == AVERAGE else d for d in datasets], rotation=30, ha="right")
    return _save(fig, out)


def plot_fewshot(summary: Summary, out: Path) -> Path:
    """One panel per dataset (Average first): accuracy vs shots (log2 axis), one line per method."""
    rows = _rows(summary, "fewshot")
    datasets = list(dict.fromkeys(r.dataset for r in rows))
    cols = min(4, len(datasets))
    nrows = math.ceil(len(datasets) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.6 * cols, 3.0 * nrows), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        for label in dict.fromkeys(r.label for r in rows if r.dataset == dataset):
            pts = sorted((r.shots, r.cells["acc"].mean) for r in rows if r.dataset == dataset and r.label == label)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
        ax.set_xscale("log", base=2)
        shots = sorted({r.shots for r in rows})
        ax.set_xticks(shots)
        ax.set_xticklabels([str(k) for k in shots])
        ax.set_title("Average" if dataset == AVERAGE else dataset)
        ax.set_xlabel("shots per class")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    return _save(fig, out)


def read_metrics(run_dir: Path) -> List[dict]:
    """The per-epoch records of ``<run_dir>/metrics.jsonl``."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ResultsError(f"No training metrics: expected {path} (written by train.py during training).")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(run_dirs: Sequence[Path], out: Path, labels: Optional[Sequence[str]] = None) -> Path:
    """One panel per numeric metric (loss, acc, lr, other loss terms) against the epoch; one line per run."""
    series: Dict[str, List[dict]] = {}
    for i, run_dir in enumerate(run_dirs):
        series[labels[i] if labels else str(run_dir)] = read_metrics(run_dir)
    keys = list(dict.fromkeys(k for recs in series.values() for rec in recs for k, v in rec.items()
                              if k not in NOT_PER_EPOCH and isinstance(v, (int, float)) and not isinstance(v, bool)))
    if not keys:
        raise ResultsError("The metrics.jsonl files hold no numeric metric to plot.")
    cols = min(3, len(keys))
    nrows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for label, recs in series.items():
            pts = [(r["epoch"], r[key]) for r in recs if key in r]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=label)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if key == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if len(series) > 1:
        axes.flat[0].legend(fontsize="x-small")
    fig.tight_layout()
    return _save(fig, out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.plots", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    for kind, what in (("base2new", "base / new / HM bars per dataset"), ("fewshot", "accuracy vs shots")):
        s = sub.add_parser(kind, help=what)
        s.add_argument("output_dir", type=Path)
        s.add_argument("--out", type=Path, required=True, help="figure file (.png or .pdf)")
        s.add_argument("--trainers", nargs="+", help="only these trainers")
    s = sub.add_parser("curves", help="training curves from metrics.jsonl")
    s.add_argument("run_dirs", type=Path, nargs="+")
    s.add_argument("--out", type=Path, required=True, help="figure file (.png or .pdf)")
    s.add_argument("--labels", nargs="+", help="legend labels, one per run directory")
    args = p.parse_args(argv)
    try:
        if args.kind == "curves":
            if args.labels and len(args.labels) != len(args.run_dirs):
                raise ResultsError(f"--labels needs one label per run directory ({len(args.run_dirs)}).")
            path = plot_curves(args.run_dirs, args.out, args.labels)
        else:
            summary = summarize(args.output_dir, [args.kind], args.trainers)
            path = (plot_base2new if args.kind == "base2new" else plot_fewshot)(summary, args.out)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
