"""Speed and memory of a trainer: training steps/s, evaluation images/s, peak memory (a benchmark, not a test).

    python -m tools.bench --trainer CoOp --config-file configs/trainers/CoOp/toy.yaml \
        --dataset-config-file configs/datasets/toy_shapes.yaml --root data [--steps 20] [KEY VALUE ...]

Batches are loaded once and reused, so the figures measure the model, not image decoding. Peak memory is the
CUDA allocator's peak on a GPU, else the process's peak resident set size.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


def benchmark(trainer, steps: int = 20, warmup: int = 3, eval_batches: int = 10) -> dict:
    device = trainer.device
    train_batch = next(iter(trainer.train_loader_x))
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 10**9  # no per-epoch LR step inside
    for _ in range(warmup):
        trainer.forward_backward(train_batch)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.forward_backward(train_batch)
    _sync(device)
    train_time = time.perf_counter() - t0

    test_batches = []
    for i, batch in enumerate(trainer.test_loader):
        if i >= eval_batches:
            break
        test_batches.append(batch)
    trainer.set_model_mode("eval")
    with torch.no_grad():
        trainer.before_test()
        trainer.model_inference(trainer.parse_batch_test(test_batches[0])[0])
        _sync(device)
        t0 = time.perf_counter()
        n_images = 0
        for batch in test_batches:
            images, _ = trainer.parse_batch_test(batch)
            trainer.model_inference(images)
            n_images += images.shape[0]
        _sync(device)
        eval_time = time.perf_counter() - t0
        trainer.after_test()
    return {
        "trainer": trainer.cfg.TRAINER.NAME,
        "backbone": trainer.cfg.MODEL.BACKBONE.NAME,
        "device": str(device),
        "precision": getattr(getattr(trainer, "precision", None), "prec", None),
        "train_batch_size": int(train_batch["img"].shape[0]),
        "train_steps_per_s": steps / train_time,
        "train_images_per_s": steps * int(train_batch["img"].shape[0]) / train_time,
        "eval_images_per_s": n_images / eval_time,
        "peak_memory_mb": peak_memory_mb(device),
        "threads": torch.get_num_threads(),
    }


def main(argv=None) -> int:
    import train

    parser = train.build_parser()
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed training steps first")
    parser.add_argument("--eval-batches", type=int, default=10, help="timed evaluation batches")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args(argv)
    if not args.output_dir:
        args.output_dir = "output/bench"
    cfg = train.setup_cfg(args)

    from engine import build_trainer
    from engine.utils import set_random_seed, setup_logger

    setup_logger("")
    set_random_seed(max(cfg.SEED, 0))
    trainer = build_trainer(cfg)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    result = benchmark(trainer, args.steps, args.warmup, args.eval_batches)
    if args.json:
        print(json.dumps(result))
    else:
        from tabulate import tabulate

        print(tabulate([[k, f"{v:.2f}" if isinstance(v, float) else v] for k, v in result.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
