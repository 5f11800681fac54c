"""``python -m tools.lamm_continual``: the command line of :mod:`experiments.lamm_continual`."""
from __future__ import annotations

import argparse
import os
import sys

from experiments import lamm_continual as library
from experiments.lamm_continual import ContinualError, SUMMARY_FILE, TrainFailed, run_continual
from tools.cli import int_at_least


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.lamm_continual", description=library.__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="dataset root ($DATA)")
    p.add_argument("--dataset-config-file", default="", help="dataset config, e.g. configs/datasets/oxford_pets.yaml")
    p.add_argument("--config-file", required=True, help="LAMM config, e.g. configs/trainers/LAMM/"
                                                       "continual_vit_b16_ep50_ctxv1.yaml")
    p.add_argument("--output-dir", required=True, help="folder of the whole experiment (set1, set2, merged, union)")
    p.add_argument("--seed", type=int, default=1, help="random seed of both runs (0 is a seed)")
    p.add_argument("--shots", type=int_at_least(1), default=16,
                   help="shots per class (DATASET.NUM_SHOTS), 16 as in the paper")
    p.add_argument("--backbone", default="", help="CLIP backbone (default: the config's)")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = run_continual(args)
    except ContinualError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainFailed as e:  # train.py printed its one-line error
        return e.code
    print(f"set 1 (base classes): {summary['set1_accuracy']:.2f}%  set 2 (new classes): "
          f"{summary['set2_accuracy']:.2f}%  union of {summary['num_classes']} classes: "
          f"{summary['union_accuracy']:.2f}%  ({os.path.join(args.output_dir, SUMMARY_FILE)})")
    return 0

if __name__ == "__main__":
    sys.exit(main())
