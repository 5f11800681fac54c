"""Print exactly the data a run would use, as JSON.

    python -m datasets.show --root DATA --dataset-config-file configs/datasets/oxford_pets.yaml \\
        --num-shots 16 --seed 1 --subsample base

prints ``{"classnames": [...], "train": [[relpath, label, classname], ...], "val": [...], "test": [...]}`` with
paths relative to the dataset's image folder and labels after base/new relabelling, one entry per line. Log messages
go to stderr, so stdout is pure JSON (``> subset.json``). ``--seed`` defaults to 1 (CoOp's scripts use 1, 2, 3).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from engine.config import ConfigError, get_cfg_default, merge_from_file
from engine.data.datasets import DATASET_REGISTRY, DatasetBase, DatasetError, Datum

from .base import SUBSAMPLE_CHOICES, format_rows


def build_cfg(root: str, dataset_config_file: str, num_shots: int, seed: int, subsample: str):
    cfg = get_cfg_default()
    merge_from_file(cfg, dataset_config_file)
    cfg.DATASET.ROOT = root
    cfg.DATASET.NUM_SHOTS = num_shots
    cfg.DATASET.SUBSAMPLE_CLASSES = subsample
    cfg.SEED = seed
    cfg.OUTPUT_DIR = ""  # no run: nothing is recorded in an output folder
    cfg.freeze()
    return cfg


def relative_rows(items: Optional[List[Datum]], image_dir: str) -> list:
    return [[os.path.relpath(d.impath, image_dir).replace(os.sep, "/"), d.label, d.classname] for d in items or []]


def describe(dataset: DatasetBase) -> dict:
    """``classnames`` and the train/val/test lists of a built dataset, paths relative to its image folder."""
    return {"classnames": dataset.classnames,
            **{key: relative_rows(getattr(dataset, attr), dataset.image_dir)
               for key, attr in (("train", "train_x"), ("val", "val"), ("test", "test"))}}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m datasets.show", description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="dataset root (DATASET.ROOT)")
    parser.add_argument("--dataset-config-file", required=True, help="configs/datasets/<name>.yaml")
    parser.add_argument("--num-shots", type=int, default=-1, help="shots per class; < 1 = all data (default)")
    parser.add_argument("--seed", type=int, default=1, help="few-shot seed (default 1)")
    parser.add_argument("--subsample", choices=SUBSAMPLE_CHOICES, default="all", help="class half (default all)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")

    import datasets  # noqa: F401  (registers the benchmarks)

    try:
        cfg = build_cfg(args.root, args.dataset_config_file, args.num_shots, args.seed, args.subsample)
        dataset = DATASET_REGISTRY.get(cfg.DATASET.NAME)(cfg)
    except (ConfigError, DatasetError, KeyError) as e:
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    sys.stdout.write(format_rows(describe(dataset)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
