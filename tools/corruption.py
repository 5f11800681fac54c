"""``python -m tools.corruption``: the command line of :mod:`experiments.corruption`."""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional, Sequence

from experiments import corruption as library
from experiments.corruption import (CorruptionError, OUT_NAME, accuracy_function, format_report,
                                    require_learned_context, run_study)
from experiments.trained_model import load_run, split_loader


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.corruption", description=library.__doc__.split("\n")[0])
    p.add_argument("--model-dir", required=True, help="output directory of a trained CoOp-family run")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: best, else the newest)")
    p.add_argument("--positions", type=int, nargs="+", default=None, help="context positions (default: all)")
    p.add_argument("--replace", type=float, nargs="*", default=[0.0, 1e-4], help="REPLACE standard deviations")
    p.add_argument("--rescale", type=float, nargs="*", default=[0.001, 0.1, 0.5], help="RESCALE factors")
    p.add_argument("--split", default="test", choices=["test", "val"], help="evaluation split")
    p.add_argument("--root", default=None, help="dataset root, if it moved since training")
    p.add_argument("--noise-seed", type=int, default=0, help="seed of the REPLACE noise")
    p.add_argument("--out", default=None, help=f"JSON output (default: MODEL_DIR/{OUT_NAME})")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides (KEY VALUE ...)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    from engine.errors import user_error_types
    from engine.utils import CheckpointError, setup_logger

    try:
        if any(v < 0 for v in args.replace):
            raise CorruptionError(f"--replace takes standard deviations >= 0; got {args.replace}.")
        setup_logger("")
        trainer = load_run(args.model_dir, load_epoch=args.load_epoch, opts=args.opts or [], with_data=True,
                           root=args.root, output_dir=args.model_dir)
        require_learned_context(trainer)
        accuracy = accuracy_function(trainer, split_loader(trainer, args.split))
        n_ctx = trainer.prompt_learner.ctx.shape[-2]
        positions = args.positions if args.positions is not None else list(range(n_ctx))
        study = run_study(trainer, accuracy, positions, args.replace, args.rescale, args.noise_seed)
    except (ValueError, FileNotFoundError, CheckpointError, *user_error_types()) as e:  # errors written for people
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg = trainer.cfg
    record = {"schema_version": 1, "model_dir": os.path.abspath(args.model_dir), "load_epoch": args.load_epoch,
              "trainer": cfg.TRAINER.NAME, "dataset": cfg.DATASET.NAME, "backbone": cfg.MODEL.BACKBONE.NAME,
              "num_shots": cfg.DATASET.NUM_SHOTS, "subsample_classes": cfg.DATASET.SUBSAMPLE_CLASSES,
              "seed": cfg.SEED, "split": args.split, **study}
    out = args.out or os.path.join(args.model_dir, OUT_NAME)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(record, f, indent=2)
    print(format_report(study))
    print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
