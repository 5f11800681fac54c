"""Train or evaluate a prompt learner (CoOp/Dassl's ``train.py`` command line).

    python train.py --root DATA --trainer CoOp --dataset-config-file configs/datasets/oxford_pets.yaml \
        --config-file configs/trainers/CoOp/vit_b16_ep50.yaml --output-dir output/pets/seed1 --seed 1 \
        DATASET.NUM_SHOTS 16

Trailing ``KEY VALUE`` pairs override the config. A finished run (``results.json`` in its output directory) of
the same result-relevant config (``engine.config_fingerprint``) is not retrained: the script says so and exits,
unless ``--force``; a finished run of another config is refused with the differing keys. An unfinished one resumes
from its last checkpoint (the newest epoch complete for every module), if it was trained with the same config
(``--allow-config-change`` overrides). One run at a time per output directory (a file lock). User mistakes print
one ``error:`` line and exit with status 2 (``--debug`` for the traceback).
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
import sys

logger = logging.getLogger("train")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=str, default="", help="path to the dataset root ($DATA)")
    p.add_argument("--output-dir", type=str, default="", help="output directory of the run")
    p.add_argument("--resume", type=str, default="", help="checkpoint directory to resume from")
    p.add_argument("--seed", type=int, default=None, help="random seed (0 is a seed; negative = unseeded)")
    p.add_argument("--source-domains", type=str, nargs="+", help="source domains (DA/DG; unused here)")
    p.add_argument("--target-domains", type=str, nargs="+", help="target domains (DA/DG; unused here)")
    p.add_argument("--transforms", type=str, nargs="+", help="training data augmentation")
    p.add_argument("--config-file", type=str, default="", help="path to the method config file")
    p.add_argument("--dataset-config-file", type=str, default="", help="path to the dataset config file")
    p.add_argument("--trainer", type=str, default="", help="name of the trainer")
    p.add_argument("--backbone", type=str, default="", help="name of the CLIP backbone")
    p.add_argument("--head", type=str, default="", help="name of the head (unused here)")
    p.add_argument("--eval-only", action="store_true", help="evaluation only")
    p.add_argument("--model-dir", type=str, default="", help="load the model from this directory for eval-only")
    p.add_argument("--load-epoch", type=int, help="load the model weights of this epoch for evaluation")
    p.add_argument("--no-train", action="store_true", help="build everything but do not train")
    p.add_argument("--force", action="store_true", help="run even if the output directory holds finished results")
    p.add_argument("--allow-config-change", action="store_true",
                   help="resume a run saved with another config (the change is recorded in results.json)")
    p.add_argument("--allow-partial-load", action="store_true",
                   help="load checkpoints of another trainer or with other keys (sets MODEL.ALLOW_PARTIAL_LOAD)")
    p.add_argument("--debug", action="store_true", help="show the traceback of user errors")
    p.add_argument("opts", default=None, nargs=argparse.REMAINDER, help="modify config options (KEY VALUE ...)")
    return p


def setup_cfg(args):
    from engine.config import build_cfg

    opts = list(args.opts or []) + (["MODEL.ALLOW_PARTIAL_LOAD", "True"] if args.allow_partial_load else [])
    return build_cfg(args.dataset_config_file, args.config_file, opts, root=args.root or None,
                     output_dir=args.output_dir or None, resume=args.resume or None, seed=args.seed,
                     trainer=args.trainer or None, backbone=args.backbone or None, transforms=args.transforms)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from engine.errors import user_error_types

    try:
        return run(args)
    except user_error_types() as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


def check_finished_run(results: dict, cfg, args, results_path: str) -> None:
    """Refuse (``UserError``) when the finished run in ``results_path`` is not the run asked for: its recorded
    result-relevant config, or what an evaluation loads (``--eval-only``, ``--model-dir``, ``--load-epoch``), differs
    (the differences are listed), or it records no config to check."""
    from engine.config_fingerprint import config_dict, evaluation_diff, finished_run_diff, format_diff
    from engine.errors import UserError

    diff = finished_run_diff(results, config_dict(cfg))
    if diff is not None:
        diff += evaluation_diff(results, args.eval_only, args.model_dir, args.load_epoch)
    if diff is None:
        raise UserError(f"{results_path} records no config, so it cannot be checked to be the run asked for; "
                        f"move {cfg.OUTPUT_DIR} aside or choose another --output-dir.")
    if diff:
        raise UserError(f"{cfg.OUTPUT_DIR} holds the finished results of another run ({results_path}); choose "
                        f"another --output-dir for this one, or move that folder aside:\n{format_diff(diff)}")


def run(args) -> int:
    from engine.errors import UserError

    cfg = setup_cfg(args)

    from engine import build_trainer
    from engine.checkpoint_set import read_manifest
    from engine.config_fingerprint import check_resume_config
    from engine.registry import TRAINER_REGISTRY
    from engine.run_files import remove_stale_temp_files
    from engine.trainer import RESULTS_FILE
    from engine.utils import collect_env_info, set_random_seed, setup_logger
    from engine.utils.run_lock import RunLock
    from engine.run_results import is_corrupt, read_results, set_aside

    try:
        TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    except KeyError as e:
        raise UserError(e.args[0] if e.args else str(e)) from None
    results_path = os.path.join(cfg.OUTPUT_DIR, RESULTS_FILE)
    if is_corrupt(cfg.OUTPUT_DIR):
        moved = set_aside(Path(results_path))
        print(f"warning: {results_path} does not parse (a copy cut short, a full disk?), so the run is not finished; "
              f"moved it to {moved} and running again (it resumes from its checkpoints).", file=sys.stderr)
    elif os.path.isfile(results_path) and not args.force:
        check_finished_run(read_results(cfg.OUTPUT_DIR), cfg, args, results_path)
        print(f"{cfg.OUTPUT_DIR} already holds finished results ({results_path}); not running again. "
              "Pass --force to run anyway, or choose another --output-dir.")
        return 0
    try:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        if not os.access(cfg.OUTPUT_DIR, os.W_OK):
            raise PermissionError("not writable")
    except OSError as e:
        raise UserError(f"Cannot use --output-dir {cfg.OUTPUT_DIR} ({e.strerror or e}); choose a writable "
                        "folder.") from None

    with RunLock(cfg.OUTPUT_DIR) as lock:
        setup_logger(cfg.OUTPUT_DIR)
        lock.warn_if_taken_over()
        remove_stale_temp_files(cfg.OUTPUT_DIR)
        if not args.eval_only and not args.no_train:
            manifest = read_manifest(cfg.RESUME or cfg.OUTPUT_DIR)
            if manifest and manifest.get("epochs") and manifest.get("config"):  # refuse before config.yaml is written
                check_resume_config(manifest["config"], cfg, cfg.RESUME or cfg.OUTPUT_DIR, args.allow_config_change)
        set_random_seed(cfg.SEED, deterministic=cfg.DETERMINISTIC)
        logger.info("** Arguments **\n%s", "\n".join(f"{k}: {v}" for k, v in sorted(vars(args).items())))
        logger.info("** Config **\n%s", cfg.dump())
        logger.info("** Environment **\n%s", collect_env_info())
        from engine.utils import atomic_write_text

        atomic_write_text(cfg.dump(), os.path.join(cfg.OUTPUT_DIR, "config.yaml"))

        trainer = build_trainer(cfg)
        trainer.allow_config_change = args.allow_config_change
        if args.eval_only:
            trainer.eval_only = True
            trainer.model_dir = args.model_dir or None
            trainer.load_epoch = args.load_epoch
            if trainer.get_model_names():
                trainer.load_model(args.model_dir, epoch=args.load_epoch)
            trainer.test()
            return 0
        if not args.no_train:
            trainer.train()
        return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("Interrupted; completed epochs are saved in the output directory and the same command resumes.",
              file=sys.stderr)
        sys.exit(130)
