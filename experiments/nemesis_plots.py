"""Nemesis's Low-Norm figures from run directories: prompt-norm and accuracy curves (matplotlib, Agg).

    python -m tools.nemesis_plots RUN_DIR [RUN_DIR ...] --out FILE.png [--labels CoOp PUN PAN]

Panels, one line per run (read from ``RUN_DIR/metrics.jsonl``, which the Nemesis trainer fills every epoch):

1. the average L2 norm of the context vectors, ``ctx_norm_mean``, against the epoch;
2. the accuracy against the epoch: ``test_acc`` when the run logged it (``TRAINER.NEMESIS.EVAL_EACH_EPOCH True``),
   else the training-batch accuracy ``acc`` (dashed);
3. the norm of each context position at the last epoch (``ctx_norm_<j>``);
4. when a run used PAN: how often pre-inference flagged each position, averaged over epochs (``pan_flag_rate_<j>``).

The CoOp baseline of these figures is a Nemesis run with ``TRAINER.NEMESIS.A 0``: CoOp's training, with the norms
logged. The output format follows the extension (.png or .pdf).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402


class PlotError(ValueError):
    """Runs that cannot be plotted; the message says why and what to do."""


def read_run(run_dir: Path) -> List[dict]:
    """The per-epoch records of ``run_dir/metrics.jsonl``, checked to hold Nemesis's norms."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise PlotError(f"No training metrics: expected {path} (train.py writes it every epoch).")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not records or "ctx_norm_mean" not in records[-1]:
        raise PlotError(f"{path} holds no prompt norms (ctx_norm_*): train with --trainer Nemesis; for the CoOp "
                        "baseline use --trainer Nemesis TRAINER.NEMESIS.A 0 (CoOp's training, norms logged).")
    return records


def position_series(record: dict, prefix: str) -> List[float]:
    """``record[prefix + "0"], record[prefix + "1"], ...`` while present."""
    values, j = [], 0
    while f"{prefix}{j}" in record:
        values.append(record[f"{prefix}{j}"])
        j += 1
    return values


def plot_runs(run_dirs: Sequence[Path], out: Path, labels: Optional[Sequence[str]] = None) -> Path:
    if labels and len(labels) != len(run_dirs):
        raise PlotError(f"--labels gives {len(labels)} names for {len(run_dirs)} runs; give one per run.")
    if out.suffix.lower() not in (".png", ".pdf"):
        raise PlotError(f"--out must end in .png or .pdf, got {out}")
    runs = [(labels[i] if labels else str(d), read_run(d)) for i, d in enumerate(run_dirs)]
    with_pan = any("pan_flag_rate_0" in r for _, recs in runs for r in recs)
    ncols = 4 if with_pan else 3
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.2))
    for i, (label, recs) in enumerate(runs):
        color = f"C{i}"
        epochs = [r["epoch"] for r in recs]
        axes[0].plot(epochs, [r["ctx_norm_mean"] for r in recs], color=color, label=label)
        if all("test_acc" in r for r in recs):
            axes[1].plot(epochs, [r["test_acc"] for r in recs], color=color, label=f"{label} (test)")
        else:
            axes[1].plot(epochs, [r.get("acc", float("nan")) for r in recs], color=color, linestyle="--",
                         label=f"{label} (train batches)")
        last = position_series(recs[-1], "ctx_norm_")
        axes[2].plot(range(len(last)), last, color=color, marker="o", label=label)
        if with_pan:
            rates = [position_series(r, "pan_flag_rate_") for r in recs if "pan_flag_rate_0" in r]
            if rates:
                mean = [sum(col) / len(col) for col in zip(*rates)]
                axes[3].plot(range(len(mean)), mean, color=color, marker="o", label=label)
    titles = ["average context-vector norm", "accuracy (%)", "norm per position (last epoch)",
              "PAN: flagged share per position"]
    xlabels = ["epoch", "epoch", "context position", "context position"]
    for ax, title, xlabel in zip(axes, titles, xlabels):
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize="x-small")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.nemesis_plots", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", type=Path, nargs="+", help="run directories (each with metrics.jsonl)")
    p.add_argument("--out", type=Path, required=True, help="figure file (.png or .pdf)")
    p.add_argument("--labels", nargs="+", help="one legend name per run (default: the directories)")
    args = p.parse_args(argv)
    try:
        out = plot_runs(args.run_dirs, args.out, args.labels)
    except PlotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
