"""``python -m tools.feature_shift``: the command line of :mod:`experiments.feature_shift`."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from experiments import feature_shift as library
from experiments.feature_shift import (AnalysisError, CLASS_CHOICES, analyse_run, plot_discrepancy_vs_accuracy,
                                       plot_shift)
from tools.cli import int_at_least


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.feature_shift", description=library.__doc__.split("\n")[0])
    p.add_argument("--model-dir", nargs="+", required=True, help="output directories of train.py runs")
    p.add_argument("--out", required=True, help="where the JSON files and figures go")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: the newest)")
    p.add_argument("--classes", choices=CLASS_CHOICES, default=None,
                   help="class set to measure on (default: the run's DATASET.SUBSAMPLE_CLASSES)")
    p.add_argument("--max-batches", type=int_at_least(1), default=None, help="measure on the first N batches only")
    p.add_argument("--tsne", action="store_true", help="also plot a t-SNE of image and text features")
    p.add_argument("--tsne-images", type=int_at_least(2), default=1000, help="test images in the t-SNE (first N)")
    p.add_argument("--verbose", action="store_true", help="show the trainers' logs")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ... (e.g. DATASET.ROOT /data)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.opts) % 2:
        print(f"error: config overrides must be KEY VALUE pairs, got {args.opts}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    from engine.errors import user_error_types
    from engine.utils import CheckpointError

    out = Path(args.out).expanduser().resolve()
    records = []
    try:
        for i, run_dir in enumerate(args.model_dir):
            records.append(analyse_run(i, Path(run_dir).expanduser().resolve(), out, args))
    except (AnalysisError, CheckpointError, FileNotFoundError, KeyError, *user_error_types()) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    if len(records) > 1:
        plot_shift(records, out / "feature_shift.png")
        plot_discrepancy_vs_accuracy(records, out / "discrepancy_vs_accuracy.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
