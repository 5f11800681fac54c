"""``python -m tools.bench``: the command line of :mod:`experiments.bench`."""
from __future__ import annotations

import argparse
import json
import sys
import tempfile

import torch

from experiments import bench as library
from experiments.bench import benchmark, build_bench_trainer, rss_mb
from tools.cli import int_at_least


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=library.__doc__.split("\n")[0],
                                epilog="Trailing KEY VALUE pairs override the config, as for train.py.")
    p.add_argument("--trainer", required=True, help="name of the trainer (e.g. CoOp)")
    p.add_argument("--config-file", default="", help="path to the method config file")
    p.add_argument("--dataset-config-file", default="", help="path to the dataset config file")
    p.add_argument("--root", default="", help="path to the dataset root ($DATA)")
    p.add_argument("--backbone", default="", help="name of the CLIP backbone (default: the config's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's; negative = 0)")
    p.add_argument("--steps", type=int_at_least(1), default=10, help="timed training steps (default 10)")
    p.add_argument("--warmup", type=int_at_least(0), default=2, help="untimed training steps first (default 2)")
    p.add_argument("--eval-images", type=int_at_least(1), default=None, help="evaluate on the first N test images")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    p.add_argument("--debug", action="store_true", help="show the traceback of user errors")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (KEY VALUE ...)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import open_clip  # noqa: F401  (imported before the memory baseline)

    from engine.errors import user_error_types
    from engine.utils import setup_logger

    setup_logger("")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as output_dir:  # a benchmark keeps no run files
            baseline = rss_mb()
            trainer = build_bench_trainer(args, output_dir)
            if trainer.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(trainer.device)
            result = benchmark(trainer, args.steps, args.warmup, args.eval_images, baseline)
    except user_error_types() as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
    else:
        from tabulate import tabulate

        print(tabulate([[k, f"{v:.2f}" if isinstance(v, float) else v] for k, v in result.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
