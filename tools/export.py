"""``python -m tools.export``: the command line of :mod:`experiments.export`."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from engine.errors import user_error_types
from engine.utils import atomic_torch_save
from experiments import export as library
from experiments.export import KINDS, export, serving_note
from experiments.trained_model import check_opts, load_run, zeroshot_trainer
from tools.cli import add_class_name_arguments, class_names_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.export", description=library.__doc__.split("\n")[0],
                                allow_abbrev=False)
    p.add_argument("run", nargs="?", default="", help="a training run's output directory (or a prompts export)")
    p.add_argument("--out", required=True, help="the file to write (.pt)")
    add_class_name_arguments(p, "the run's classes")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: best, else newest)")
    p.add_argument("--kind", choices=("auto", *KINDS), default="auto", help="artefact kind (default auto)")
    p.add_argument("--trainer", default="", help="without RUN: ZeroshotCLIP or ZeroshotCLIP2")
    p.add_argument("--backbone", default="", help="without RUN: the CLIP backbone")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ..., last on the line")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    from experiments.predict import run_classnames

    try:
        names = class_names_from_args(args)
        opts = check_opts(args.opts)
        if args.run and os.path.isfile(args.run):
            trainer = load_run(args.run, names, args.load_epoch, opts)
        elif args.run:
            trainer = load_run(args.run, names or run_classnames(args.run, opts), args.load_epoch, opts)
        elif args.trainer and args.backbone and names:
            trainer = zeroshot_trainer(args.trainer, args.backbone, names, opts=opts)
        else:
            raise ValueError("Pass a run directory, or --trainer ZeroshotCLIP --backbone NAME and the class names "
                             "(--classname NAME once per class, or --classnames-file FILE).")
        artefact = export(trainer, args.kind)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, *user_error_types()) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    atomic_torch_save(artefact, args.out)
    print(f"wrote {args.out}: {artefact['kind']} of {artefact['trainer']} for {len(artefact['classnames'])} classes; "
          f"{serving_note(artefact, args.out)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
