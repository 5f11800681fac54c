"""``python -m tools.gpu_check``: the command line of :mod:`experiments.gpu_check`."""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Optional, Sequence

import torch

from experiments import gpu_check as library
from experiments.gpu_check import NoCudaError, PRECISIONS, TRAINERS, require_cuda, run_checks
from tools.cli import int_at_least


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=library.__doc__.split("\n\n")[0])
    p.add_argument("--trainers", nargs="+", default=list(TRAINERS), choices=TRAINERS)
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    p.add_argument("--steps", type=int_at_least(1), default=20, help="training steps per trainer and precision")
    p.add_argument("--eval-images", type=int_at_least(1), default=2000, help="images per evaluation")
    p.add_argument("--backbone", default="random:ViT-B-16")
    p.add_argument("--size", type=int_at_least(1), default=224, help="input size in pixels")
    p.add_argument("--root", default=os.path.join(tempfile.gettempdir(), "gpu-check-data"),
                   help="where the toy images are rendered")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="extra KEY VALUE config options (last)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.device = str(require_cuda())
    except NoCudaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from engine.utils import setup_logger

    setup_logger(os.path.join(tempfile.gettempdir(), "gpu-check.log"))  # details to the file, rows to stdout
    import logging

    logging.getLogger().handlers[0].setLevel(logging.WARNING)
    print(f"GPU check on {torch.cuda.get_device_name(0)}: {args.backbone} at {args.size} px, "
          f"{args.steps} steps and {args.eval_images} evaluation images per trainer and precision", flush=True)
    t0 = time.time()
    rows = run_checks(args)
    failed = [r for r in rows if r["failures"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} passed in {time.time() - t0:.0f} s "
          f"(target: at most 420 s).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
