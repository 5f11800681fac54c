"""``python -m tools.lamm_continual``: the command line of :mod:`experiments.lamm_continual`."""
from __future__ import annotations

import argparse
import json
import os
import sys

from engine.utils import atomic_write_text, save_checkpoint
from experiments import lamm_continual as library
from experiments.lamm_continual import (ContinualError, MODEL_NAME, SETS, TrainFailed, accuracy, final_checkpoint,
                                        merge_label_checkpoints, run_train, train_argv)
from tools.cli import int_at_least
from trainers.lamm import META_KEY


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
    out = args.output_dir
    try:
        for name, subsample in SETS:
            run_train(train_argv(args, os.path.join(out, name), subsample))
        merged = merge_label_checkpoints([final_checkpoint(os.path.join(out, name)) for name, _ in SETS])
        merged_dir = os.path.join(out, "merged")
        save_checkpoint(merged, os.path.join(merged_dir, MODEL_NAME))
        union = os.path.join(out, "union")
        run_train(train_argv(args, union, "all", "--eval-only", "--model-dir", merged_dir,
                             "--load-epoch", str(merged["epoch"]), "--force"))
    except ContinualError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainFailed as e:  # train.py printed its one-line error
        return e.code
    summary = {"set1_accuracy": accuracy(os.path.join(out, "set1")),
               "set2_accuracy": accuracy(os.path.join(out, "set2")),
               "union_accuracy": accuracy(union),
               "num_classes": len(merged[META_KEY]["classnames"]),
               "merged_from": merged["merged_from"]}
    atomic_write_text(json.dumps(summary, indent=2) + "\n", os.path.join(out, "continual.json"))
    print(f"set 1 (base classes): {summary['set1_accuracy']:.2f}%  set 2 (new classes): "
          f"{summary['set2_accuracy']:.2f}%  union of {summary['num_classes']} classes: "
          f"{summary['union_accuracy']:.2f}%  ({os.path.join(out, 'continual.json')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
