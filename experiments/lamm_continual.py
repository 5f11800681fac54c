"""Continual learning with LAMM: learn one class set, then another, merge the label tables, test on the union.

The LAMM paper claims class-incremental learning comes for free because each class owns its label tokens; the
released repository trains the two halves separately (``base2new_train_set{1,2}_lamm_all.sh``) but has no code
that merges or evaluates them (docs/LAMM.md, "Continual learning"). This command does, through ``train.py``::

    python -m tools.lamm_continual --root $DATA --dataset-config-file configs/datasets/oxford_pets.yaml \\
        --config-file configs/trainers/LAMM/continual_vit_b16_ep50_ctxv1.yaml \\
        --output-dir output/continual/pets/seed1 --seed 1 [--shots 16] [KEY VALUE ...]

Steps (a training run whose output already holds ``results.json`` is not rerun, so a rerun resumes):

1. ``OUT/set1``: train on ``DATASET.SUBSAMPLE_CLASSES base`` (the first ceil(n/2) labels);
2. ``OUT/set2``: train on ``new`` (the rest) from a fresh model: the second run never loads or writes set 1's
   table, so set 1's learned labels are untouched;
3. ``OUT/merged/prompt_learner/model.pth.tar-E``: set 1's checkpoint with set 2's label rows appended, keyed by
   class name (:func:`merge_label_checkpoints`);
4. ``OUT/union``: ``--eval-only`` of the merged model on all classes (always redone, it is cheap);
   ``OUT/continual.json`` holds the three accuracies.

The merge is exact only when the label tables are all that the two runs learned (``TRAINER.LAMM.BASE clip``, the
paper's setting): a shared learned context (``coop``, ``maple``) differs between the runs, and the merge refuses
it rather than pick one.
"""
from __future__ import annotations

import json
import logging
import os
from typing import List, Sequence

import torch

from engine.launch import main as train_main
from engine.run_results import RESULTS_FILE
from engine.utils import atomic_write_text, latest_checkpoint, load_checkpoint, save_checkpoint
from trainers.lamm import LABEL_PREFIX, META_KEY

logger = logging.getLogger("lamm_continual")

MODEL_NAME = "prompt_learner"
SETS = (("set1", "base"), ("set2", "new"))
SUMMARY_FILE = "continual.json"


class ContinualError(ValueError):
    pass


class TrainFailed(Exception):
    """A ``train.py`` step stopped with a non-zero status; it has printed its own message."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def train_argv(args, output_dir: str, subsample: str, *extra: str) -> List[str]:
    argv = ["--root", args.root, "--config-file", args.config_file, "--output-dir", output_dir,
            "--seed", str(args.seed), "--trainer", "LAMM"]
    if args.dataset_config_file:
        argv += ["--dataset-config-file", args.dataset_config_file]
    if args.backbone:
        argv += ["--backbone", args.backbone]
    return argv + list(extra) + list(args.opts or []) + [
        "DATASET.NUM_SHOTS", str(args.shots), "DATASET.SUBSAMPLE_CLASSES", subsample]


def train_in_process(argv: Sequence[str]) -> None:
    """``python train.py ARGV`` in this process (:func:`engine.launch.main`); :class:`TrainFailed` unless it
    returns 0."""
    code = train_main(list(argv))
    if code != 0:
        raise TrainFailed(code)


def final_checkpoint(run_dir: str) -> str:
    path = latest_checkpoint(os.path.join(run_dir, MODEL_NAME))
    if path is None:
        raise ContinualError(f"No checkpoint in {os.path.join(run_dir, MODEL_NAME)}: the run did not finish. Rerun "
                             "this command; it resumes the unfinished run.")
    return path


def merge_label_checkpoints(paths: Sequence[str]) -> dict:
    """One checkpoint whose label table is the union of the tables in ``paths`` (in that order).

    Every other tensor (the context) must be identical in all of them, which holds when only labels were learned.
    Class names repeated across the runs are kept in order (the union's ``"name [2]"`` key is the second one).
    """
    ckpts = [load_checkpoint(p) for p in paths]
    for path, ckpt in zip(paths, ckpts):
        if META_KEY not in ckpt:
            raise ContinualError(f"{path} is not a LAMM checkpoint (no {META_KEY!r} entry): train with --trainer LAMM.")
    first = ckpts[0]["state_dict"]
    shared = {k: v for k, v in first.items() if not k.startswith(LABEL_PREFIX)}
    for path, ckpt in zip(paths[1:], ckpts[1:]):
        other = {k: v for k, v in ckpt["state_dict"].items() if not k.startswith(LABEL_PREFIX)}
        differ = sorted(k for k in set(shared) | set(other)
                        if k not in shared or k not in other or not torch.equal(shared[k], other[k]))
        if differ:
            raise ContinualError(
                f"{paths[0]} and {path} learned different shared parameters ({', '.join(differ)}), so their label "
                "tables cannot be merged exactly. Continual learning needs TRAINER.LAMM.BASE clip, where the label "
                "tokens are the only learned parameters.")
    names = [n for c in ckpts for n in c[META_KEY]["classnames"]]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        logger.warning("Class names in more than one run (matched by order of occurrence): %s", repeated)
    state = dict(shared)
    for part in ("values", "anchor"):
        state[LABEL_PREFIX + part] = torch.cat([c["state_dict"][LABEL_PREFIX + part] for c in ckpts])
    meta = {"classnames": names, "counts": [k for c in ckpts for k in c[META_KEY]["counts"]]}
    return {"state_dict": state, "epoch": ckpts[0]["epoch"], "optimizer": None, "scheduler": None,
            "val_result": None, META_KEY: meta, "merged_from": [os.path.abspath(p) for p in paths]}


def accuracy(run_dir: str) -> float:
    with open(os.path.join(run_dir, RESULTS_FILE)) as f:
        return float(json.load(f)["metrics"]["accuracy"])


def run_continual(args) -> dict:
    """Both training runs, the merged label table, the evaluation on the union; returns (and writes to
    ``<output_dir>/continual.json``) the three accuracies. ``args`` holds the options of ``tools.lamm_continual``.
    Raises :class:`ContinualError` for a request it cannot serve, :class:`TrainFailed` when a run failed."""
    out = args.output_dir
    for name, subsample in SETS:
        train_in_process(train_argv(args, os.path.join(out, name), subsample))
    merged = merge_label_checkpoints([final_checkpoint(os.path.join(out, name)) for name, _ in SETS])
    merged_dir = os.path.join(out, "merged")
    save_checkpoint(merged, os.path.join(merged_dir, MODEL_NAME))
    union = os.path.join(out, "union")
    train_in_process(train_argv(args, union, "all", "--eval-only", "--model-dir", merged_dir,
                                "--load-epoch", str(merged["epoch"]), "--force"))
    summary = {"set1_accuracy": accuracy(os.path.join(out, "set1")),
               "set2_accuracy": accuracy(os.path.join(out, "set2")),
               "union_accuracy": accuracy(union),
               "num_classes": len(merged[META_KEY]["classnames"]),
               "merged_from": merged["merged_from"]}
    atomic_write_text(json.dumps(summary, indent=2) + "\n", os.path.join(out, SUMMARY_FILE))
    return summary
