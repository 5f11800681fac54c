"""``python -m tools.results``: the command line of :mod:`experiments.results`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from experiments import results as library
from experiments.protocols import PROTOCOLS
from experiments.results import FORMATS, ResultsError, report, summarize


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.results", description=library.__doc__.split("\n\n")[0])
    p.add_argument("output_dir", type=Path, help="root of the run directories (e.g. output/)")
    p.add_argument("--format", choices=[*FORMATS, "csv"], help="default: from --output's extension, else terminal")
    p.add_argument("--compare", choices=["reported"], help="show published numbers and differences")
    p.add_argument("--output", type=Path, help="also write the table to this file")
    p.add_argument("--protocols", nargs="+", choices=[*PROTOCOLS, "other"], help="only these protocols")
    p.add_argument("--trainers", nargs="+", help="only these trainers")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    suffix_format = {".md": "markdown", ".csv": "csv", ".tex": "latex"}
    fmt_name = args.format or (suffix_format.get(args.output.suffix) if args.output else None) or "terminal"
    try:
        summary = summarize(args.output_dir, args.protocols, args.trainers)
        if not summary.rows:
            raise ResultsError(f"No results found under {args.output_dir} (no run directory with results.json, "
                               f"or log.txt with a final accuracy).")
        text = report(summary, fmt_name, compare=bool(args.compare))
    except ResultsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for w in summary.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"written: {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
