"""Where a trainer's time goes, as ratios to the limit (a benchmark that prints figures, not a test).

    python -m tools.bench --trainer CoOp --config-file configs/trainers/CoOp/toy.yaml \
        --dataset-config-file configs/datasets/toy_shapes.yaml --root data [--steps 10] [--eval-images 200] [KEY VALUE ...]

Everything is measured in one process on the same images:

- data pipeline: images/s of the test loader alone (decode + transform) and of the training loader alone;
- evaluation ÷ (data loading + a pure image-encoder pass): an uncached evaluation (``TEST.FEATURE_CACHE False``:
  class text features, encoder, head, evaluator, loading) against the least any evaluation must do, loading the
  images and encoding them once (1.0 is the limit); the same ratio without loading (batches in memory);
- feature cache: the first cached evaluation (encodes and stores) and a later one (reads), against uncached, for
  trainers whose image path is frozen (``FROZEN_IMAGE_FEATURES``); the cache lives in a temporary folder;
- training step ÷ model cost: ``forward_backward`` on one batch against the model's own work on it (image forward,
  text forward, and the backward through whatever has trainable inputs), so 1.0 is the limit and APLe's three
  steps per batch show as about 3;
- peak memory: the CUDA allocator's peak on a GPU; on CPU, the growth of the process's peak resident set after
  torch and open_clip were imported (importing torch alone costs some hundreds of MB).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
import time
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from tools.cli import int_at_least


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def rss_mb() -> float:
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss_kb / 1024 if sys.platform != "darwin" else rss_kb / 2**20


def peak_memory_mb(device: torch.device, baseline_mb: float = 0.0) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return rss_mb() - baseline_mb


@contextlib.contextmanager
def config_values(trainer, **values):
    """Temporarily set ``cfg.TEST``/``cfg.MODEL.BACKBONE`` keys (``FEATURE_CACHE``, ``CACHE_DIR``)."""
    cfg = trainer.cfg
    nodes = {"FEATURE_CACHE": cfg.TEST, "CACHE_DIR": cfg.MODEL.BACKBONE}
    old = {k: nodes[k][k] for k in values}
    cfg.defrost()
    for k, v in values.items():
        nodes[k][k] = v
    cfg.freeze()
    try:
        yield
    finally:
        cfg.defrost()
        for k, v in old.items():
            nodes[k][k] = v
        cfg.freeze()


def limit_test_set(trainer, n_images: Optional[int]) -> None:
    """Evaluate on the first ``n_images`` test images (same transform, batch size and order)."""
    if not n_images or n_images >= len(trainer.test_loader.dataset):
        return
    from engine.data.data_manager import build_data_loader

    loader = trainer.test_loader
    trainer.test_loader = build_data_loader(trainer.cfg, sampler_type=trainer.cfg.DATALOADER.TEST.SAMPLER,
                                            data_source=loader.dataset.data_source[:n_images],
                                            batch_size=loader.batch_size, tfm=loader.dataset.transform,
                                            is_train=False)


def evaluation_time(trainer, batches=None) -> float:
    """One evaluation through the trainer's path: from the loader, or from ``batches`` already in memory."""
    def run():
        trainer.set_model_mode("eval")
        with torch.no_grad():
            trainer.before_test()
            if batches is None:
                for _ in trainer.evaluation_outputs(trainer.test_loader):
                    pass
            else:
                for images in batches:
                    trainer.model_inference(images)
            trainer.after_test()
    return timed(run, trainer.device)


def eval_figures(trainer) -> dict:
    device, loader = trainer.device, trainer.test_loader
    n_images = len(loader.dataset)
    batches = []
    load_s = timed(lambda: batches.extend(trainer.parse_batch_test(b)[0] for b in loader), device)

    def encode():
        with torch.no_grad(), trainer.precision.autocast():
            for images in batches:
                trainer.clip_model.encode_image(images)

    encode()  # warm-up (allocator, kernels)
    encode_s = timed(encode, device)
    with config_values(trainer, FEATURE_CACHE=False):
        eval_s = evaluation_time(trainer)
        eval_mem_s = evaluation_time(trainer, batches)
    out = {
        "test_images": n_images,
        "data_test_images_per_s": n_images / load_s,
        "encoder_images_per_s": n_images / encode_s,
        "eval_images_per_s": n_images / eval_s,
        "eval_over_load_plus_encoder": eval_s / (load_s + encode_s),
        "eval_over_encoder_in_memory": eval_mem_s / encode_s,
        "data_loading_share_of_eval": load_s / eval_s,
    }
    if getattr(trainer, "FROZEN_IMAGE_FEATURES", False):
        with tempfile.TemporaryDirectory() as tmp, config_values(trainer, FEATURE_CACHE=True, CACHE_DIR=tmp):
            first_s = evaluation_time(trainer)
            later_s = evaluation_time(trainer)
        out.update({"cached_first_over_uncached": first_s / eval_s, "uncached_over_cached_later": eval_s / later_s})
    return out


def model_cost_pass(trainer, images: torch.Tensor) -> None:
    """The model's own work on a batch: image forward, text forward, backward through trainable inputs."""
    with trainer.precision.autocast():
        img = trainer.image_features(images)
        if trainer.IMAGE_CONDITIONED_TEXT:
            txt = trainer.conditioned_text_features(F.normalize(img.float(), dim=-1))
        else:
            txt = trainer.text_features()
    total = img.float().sum() + txt.float().sum()
    if total.requires_grad:
        total.backward()
    trainer.model_zero_grad()


def train_figures(trainer, steps: int, warmup: int) -> dict:
    """Training figures (none for a trainer with nothing to train, e.g. ZeroshotCLIP)."""
    if not trainer.get_model_names():
        return {}
    device = trainer.device
    loader = trainer.train_loader_x
    n_batches = min(steps, len(loader))
    seen = []
    load_s = timed(lambda: seen.extend(b["img"].shape[0] for _, b in zip(range(n_batches), loader)), device)
    batch = next(iter(loader))
    trainer.set_model_mode("train")
    trainer.epoch, trainer.batch_idx, trainer.num_batches = 0, 0, 10**9  # no LR step inside
    for _ in range(warmup):
        trainer.forward_backward(batch)
    step_s = timed(lambda: [trainer.forward_backward(batch) for _ in range(steps)], device) / steps
    out = {"train_batch_size": int(batch["img"].shape[0]), "data_train_images_per_s": sum(seen) / load_s,
           "train_steps_per_s": 1.0 / step_s}
    if hasattr(trainer, "image_features") and hasattr(trainer, "text_features"):
        images, _ = trainer.parse_batch_train(batch)
        model_cost_pass(trainer, images)  # warm-up
        cost_s = timed(lambda: [model_cost_pass(trainer, images) for _ in range(steps)], device) / steps
        out["train_step_over_model_cost"] = step_s / cost_s
    return out


def benchmark(trainer, steps: int = 10, warmup: int = 2, eval_images: Optional[int] = None,
              memory_baseline_mb: float = 0.0) -> dict:
    limit_test_set(trainer, eval_images)
    result = {
        "trainer": trainer.cfg.TRAINER.NAME,
        "backbone": trainer.cfg.MODEL.BACKBONE.NAME,
        "input_size": tuple(trainer.cfg.INPUT.SIZE),
        "device": str(trainer.device),
        "precision": getattr(getattr(trainer, "precision", None), "prec", None),
        "threads": torch.get_num_threads(),
    }
    result.update(eval_figures(trainer))
    result.update(train_figures(trainer, steps, warmup))
    result["peak_memory_mb"] = peak_memory_mb(trainer.device, memory_baseline_mb)
    return result


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.split("\n")[0],
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


def build_bench_trainer(args, output_dir: str):
    """The trainer of ``args`` (its outputs, if any, go to ``output_dir``); unknown names are user errors."""
    from engine import TRAINER_REGISTRY, build_trainer
    from engine.config import build_cfg
    from engine.errors import UserError
    from engine.utils import set_random_seed

    import trainers  # noqa: F401  (registers the trainers)

    try:
        TRAINER_REGISTRY.get(args.trainer)
    except KeyError as e:
        raise UserError(e.args[0] if e.args else str(e)) from None
    cfg = build_cfg(args.dataset_config_file, args.config_file, args.opts or [], root=args.root or None,
                    output_dir=output_dir, seed=args.seed, trainer=args.trainer, backbone=args.backbone or None)
    set_random_seed(max(cfg.SEED, 0))
    return build_trainer(cfg)


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
