"""``python -m tools.plots``: the command line of :mod:`experiments.plots`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from experiments import plots as library
from experiments.base2new_plot import plot_base2new
from experiments.plots import plot_curves, plot_fewshot
from experiments.results import Reported, ResultsError, summarize


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.plots", description=library.__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="kind", required=True)
    for kind, what in (("base2new", "new against base accuracy with HM iso-lines (or --view bars)"),
                       ("fewshot", "accuracy against shots")):
        s = sub.add_parser(kind, help=what)
        s.add_argument("output_dir", type=Path)
        s.add_argument("--out", type=Path, required=True, help="figure file (.png, .pdf or .svg)")
        s.add_argument("--trainers", nargs="+", help="only these trainers")
        s.add_argument("--compare", choices=["reported"], help="overlay published numbers (hollow markers)")
        if kind == "base2new":
            s.add_argument("--view", choices=["tradeoff", "bars"], default="tradeoff",
                           help="tradeoff: scatter with HM iso-lines (default); bars: base / new / HM bars")
    s = sub.add_parser("curves", help="training curves from metrics.jsonl")
    s.add_argument("run_dirs", type=Path, nargs="+")
    s.add_argument("--out", type=Path, required=True, help="figure file (.png, .pdf or .svg)")
    s.add_argument("--labels", nargs="+", help="legend labels, one per run directory (equal labels: mean ± std)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.kind == "curves":
            path = plot_curves(args.run_dirs, args.out, args.labels)
        else:
            protocols = ["base2new"] if args.kind == "base2new" else ["fewshot", "zeroshot"]
            summary = summarize(args.output_dir, protocols, args.trainers)
            if args.compare:
                Reported().attach(summary)
            path = (plot_base2new(summary, args.out, args.view) if args.kind == "base2new"
                    else plot_fewshot(summary, args.out))
            for w in summary.warnings:
                print(f"warning: {w}", file=sys.stderr)
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
