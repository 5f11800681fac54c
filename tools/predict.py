"""``python -m tools.predict``: the command line of :mod:`experiments.predict`."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from engine.errors import user_error_types
from experiments import predict as library
from experiments.predict import expand_inputs, predict, serving_trainer, write_records
from experiments.trained_model import check_opts
from tools.cli import add_class_name_arguments, class_names_from_args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.predict", description=library.__doc__.split("\n")[0],
                                allow_abbrev=False)
    p.add_argument("inputs", nargs="*", help="image files, folders (recursive) or globs")
    p.add_argument("--input", action="append", default=[], metavar="PATH",
                   help="one more input (a file, folder or glob); repeatable")
    p.add_argument("--model-dir", default="", help="a training run's output directory, or a tools.export file")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: best, else newest)")
    p.add_argument("--trainer", default="", help="without --model-dir: ZeroshotCLIP or ZeroshotCLIP2")
    p.add_argument("--backbone", default="", help="without --model-dir: the CLIP backbone, e.g. ViT-B/16")
    p.add_argument("--config-file", default="", help="without --model-dir: a config for the input settings")
    add_class_name_arguments(p, "the run's classes, or those stored in an export")
    p.add_argument("--topk", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default jsonl)")
    p.add_argument("--batch-size", type=int, default=64, help="images per batch (default 64)")
    p.add_argument("--workers", type=int, default=0, help="image-loading processes (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--opts", nargs="*", default=[], help="config overrides KEY VALUE ..., last on the line")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(message)s")
    try:
        if args.topk < 1:
            raise ValueError("--topk must be at least 1.")
        names = class_names_from_args(args)
        opts = check_opts(args.opts)
        if not (args.inputs or args.input):
            raise ValueError("No images given: pass image files, folders or globs as arguments, or --input PATH.")
        paths = expand_inputs([*args.inputs, *args.input])
        trainer, transform = serving_trainer(names, opts, args.model_dir, args.load_epoch, args.trainer, args.backbone,
                                             args.config_file)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError, *user_error_types()) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    k = min(args.topk, trainer.num_classes)
    failed = write_records(predict(trainer, paths, transform, k, args.batch_size, args.workers,
                                   progress=not args.no_progress), args.format, k)
    return 3 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
