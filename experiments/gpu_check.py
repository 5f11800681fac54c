"""GPU check: every trainer in two readings of fp16, bf16 and amp on a CUDA GPU, offline (``scripts/gpu_check.sh``).

Precisions (``READINGS``): ``fp16`` (``PREC fp16``, the official arithmetic: fp16 trainable tensors and SGD state),
``fp16-m32`` (``PREC fp16`` with ``MASTER_WEIGHTS fp32``: fp32 master weights), ``bf16`` and ``amp``
(``trainers/precision.py``). For each trainer (its ``configs/trainers/<T>/toy.yaml`` recipe, on ``random:ViT-B-16``
at 224 px and the generated ToyShapes images) and each precision:

1. agreement: logits on one test batch, before training, against the same trainer built in fp32 from the same seed
   (same random backbone, same prompts); it fails when ``max |Δ logit| > TOL[prec] * logit_scale``, i.e. when a
   cosine similarity moves by more than 1e-2 (fp16, amp) or 4e-2 (bf16: 8 mantissa bits);
2. 20 training steps (ZeroshotCLIP has none); it fails on a non-finite loss. The cosine drift is then
   ``max |Δ logit| / logit_scale`` on the same batch against the fp32 trainer after the same 20 steps (same seed,
   same batches): how far each reading of fp16 has moved from fp32 (reported, not judged);
3. an uncached evaluation of 2,000 images (the test set repeated to that count) and a pure image-encoder pass
   over the same images: prints images/s and the evaluation ÷ (loading + encoder) ratio;
4. the peak CUDA memory of the step and the evaluation.

The whole check targets at most 7 minutes on one H200-class GPU (four precisions and the trained fp32 reference); it
prints its wall time. On a machine without a CUDA GPU it refuses with exit status 2 and says so. Exit status 1 when
any check fails.
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import torch

from tools.cli import int_at_least

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINERS = ("ZeroshotCLIP", "CoOp", "CoCoOp", "MaPLe", "IVLP", "VPT", "RESTORE", "APLe", "LAMM", "Nemesis")
# reading -> (PREC, MASTER_WEIGHTS)
READINGS = {"fp16": ("fp16", "fp16"), "fp16-m32": ("fp16", "fp32"), "bf16": ("bf16", "fp16"), "amp": ("amp", "fp16"),
            "fp32": ("fp32", "fp16")}
PRECISIONS = ("fp16", "fp16-m32", "bf16", "amp")
TOL = {"fp16": 1e-2, "fp16-m32": 1e-2, "amp": 1e-2, "bf16": 4e-2, "fp32": 0.0}  # on cosines (logits / logit_scale)
PREC_NODE = {"ZeroshotCLIP": "ZSCLIP", "CoOp": "COOP", "CoCoOp": "COCOOP", "MaPLe": "MAPLE", "IVLP": "IVLP",
             "VPT": "VPT", "RESTORE": "RESTORE", "APLe": "APLE", "LAMM": "LAMM", "Nemesis": "COOP"}


class NoCudaError(RuntimeError):
    pass


def require_cuda() -> torch.device:
    if not torch.cuda.is_available():
        built = torch.version.cuda or "no CUDA (a CPU-only build)"
        raise NoCudaError(
            f"No CUDA GPU is visible (torch {torch.__version__}, built with {built}; CUDA_VISIBLE_DEVICES="
            f"{os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')!r}). This check measures fp16/bf16/amp on a GPU and "
            "has nothing to check on a CPU: run it on a machine with a CUDA GPU, or run the CPU suite with "
            "`bash scripts/test.sh`.")
    return torch.device("cuda")


def build(trainer: str, prec: str, root: str, backbone: str, size: int, seed: int = 1, opts: Sequence[str] = ()):
    from engine import build_trainer
    from engine.config import build_cfg
    from engine.utils import set_random_seed

    folder = "CoOp" if trainer == "ZeroshotCLIP" else trainer
    node = PREC_NODE[trainer]
    precision, master_weights = READINGS[prec]
    cfg = build_cfg(os.path.join(REPO, "configs", "datasets", "toy_shapes.yaml"),
                    os.path.join(REPO, "configs", "trainers", folder, "toy.yaml"),
                    ["INPUT.SIZE", f"({size}, {size})", f"TRAINER.{node}.PREC", precision,
                     f"TRAINER.{node}.MASTER_WEIGHTS", master_weights,
                     "TEST.FEATURE_CACHE", "False", "DATASET.NUM_SHOTS", "4", *opts],
                    root=root, output_dir=tempfile.mkdtemp(prefix="gpu-check-"), seed=seed, trainer=trainer,
                    backbone=backbone)
    set_random_seed(seed)
    return build_trainer(cfg)


def resize_test_set(t, n_images: int) -> None:
    """The test set repeated (or cut) to ``n_images`` images, same transform and batch size."""
    from engine.data.data_manager import build_data_loader

    loader = t.test_loader
    source = list(itertools.islice(itertools.cycle(loader.dataset.data_source), n_images))
    t.test_loader = build_data_loader(t.cfg, sampler_type="SequentialSampler", data_source=source,
                                      batch_size=loader.batch_size, tfm=loader.dataset.transform, is_train=False)


@torch.no_grad()
def probe_logits(t) -> torch.Tensor:
    images, _ = t.parse_batch_test(next(iter(t.test_loader)))
    t.set_model_mode("eval")
    t.before_test()
    out = t.model_inference(images).float().cpu()
    t.after_test()
    return out


def train_steps(t, steps: int) -> List[float]:
    if type(t).__name__.startswith("Zeroshot"):
        return []
    t.set_model_mode("train")
    t.epoch, t.num_batches = 0, 10**9
    losses = []
    batches = itertools.cycle(t.train_loader_x)
    for t.batch_idx in range(steps):
        losses.append(float(t.forward_backward(next(batches))["loss"]))
    return losses


def check_one(trainer: str, prec: str, reference: torch.Tensor, args,
              reference_trained: Optional[torch.Tensor] = None) -> Dict[str, object]:
    """One (trainer, precision): agreement, steps, cosine drift against ``reference_trained`` (the fp32 probe after
    the same steps; none without it), evaluation figures; ``failures`` lists what failed."""
    from experiments.bench import eval_figures

    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = build(trainer, prec, args.root, args.backbone, args.size, opts=args.opts)
    failures = []
    logits = probe_logits(t)
    scale = float(t.logit_scale)  # exp(logit_scale), as the head multiplies by it
    diff = float((logits - reference).abs().max())
    if not torch.isfinite(logits).all():
        failures.append("non-finite logits")
    elif diff > TOL[prec] * scale:
        failures.append(f"logits differ from fp32 by {diff:.4g} > {TOL[prec]} x {scale:.4g}")
    try:
        losses = train_steps(t, args.steps)
        if not all(math.isfinite(x) for x in losses):
            failures.append("non-finite loss")
    except FloatingPointError as e:
        losses, failures = [], failures + [f"non-finite loss: {e}"]
    drift = None
    if reference_trained is not None and not failures:
        drift = float((probe_logits(t) - reference_trained).abs().max()) / scale
    resize_test_set(t, args.eval_images)
    figures = eval_figures(t) if not failures else {}
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    del t
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"trainer": trainer, "prec": prec, "max_logit_diff": diff, "cosine_drift": drift,
            "final_loss": losses[-1] if losses else None,
            "eval_images_per_s": figures.get("eval_images_per_s"),
            "eval_over_load_plus_encoder": figures.get("eval_over_load_plus_encoder"),
            "peak_cuda_mb": peak, "failures": failures}


def run_checks(args) -> List[Dict[str, object]]:
    rows = []
    for trainer in args.trainers:
        ref_trainer = build(trainer, "fp32", args.root, args.backbone, args.size, opts=args.opts)
        reference = probe_logits(ref_trainer)
        train_steps(ref_trainer, args.steps)
        reference_trained = probe_logits(ref_trainer)
        del ref_trainer
        for prec in args.precisions:
            row = check_one(trainer, prec, reference, args, reference_trained)
            rows.append(row)
            print(format_row(row), flush=True)
    return rows


def _f(x, spec: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def format_row(row: Dict[str, object]) -> str:
    status = "FAIL " + "; ".join(row["failures"]) if row["failures"] else "ok"
    return (f"{row['trainer']:<13} {row['prec']:<8} max|Δlogit| {_f(row['max_logit_diff'], '.3g'):>8}  "
            f"cos drift after steps {_f(row.get('cosine_drift'), '.3g'):>8}  "
            f"loss {_f(row['final_loss'], '.4f'):>7}  eval {_f(row['eval_images_per_s'], '.0f'):>6} img/s  "
            f"eval/(load+enc) {_f(row['eval_over_load_plus_encoder'], '.2f'):>5}  "
            f"peak {_f(row['peak_cuda_mb'], '.0f'):>6} MiB  {status}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__.split("\n\n")[0])
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
