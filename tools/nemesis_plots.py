"""``python -m tools.nemesis_plots``: the command line of :mod:`experiments.nemesis_plots`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from experiments import nemesis_plots as library
from experiments.nemesis_plots import PlotError, plot_runs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.nemesis_plots", description=library.__doc__.split("\n\n")[0])
    p.add_argument("run_dirs", type=Path, nargs="+", help="run directories (each with metrics.jsonl)")
    p.add_argument("--out", type=Path, required=True, help="figure file (.png or .pdf)")
    p.add_argument("--labels", nargs="+", help="one legend name per run (default: the directories)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        out = plot_runs(args.run_dirs, args.out, args.labels)
    except PlotError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
