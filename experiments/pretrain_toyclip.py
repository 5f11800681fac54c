"""Pretrain toyclip contrastively on captioned toy-world images (CPU, about 15 minutes on 2 cores).

Recipe (CLIP, Radford et al. 2021, Sec. 2.3, at toy scale):
- data: an endless stream of freshly sampled toy scenes and their captions
  (`datasets.toy_world.caption_pairs`, a random stream disjoint from every benchmark's; 30% of the
  scenes are infrared photos, captioned as such 90% of the time), images
  rendered at 64x64 and preprocessed like the benchmarks (bicubic resize to 32, CLIP statistics);
- model: `clip.toyclip.TOYCLIP_CONFIG` (open_clip ViT and text transformer);
- loss: symmetric InfoNCE with a learnable temperature,
      L = 1/2 [CE(s I T^T, diag) + CE(s T I^T, diag)],  s = exp(logit_scale) <= 100,
  with I `[B, D]`, T `[B, D]` the L2-normalised image and text features;
- optimiser: AdamW (betas 0.9/0.98, eps 1e-6), linear warm-up then cosine decay; weight decay
  only on matrices, never on embeddings (so unused token rows keep their init; see
  `clip/toyclip.py`).

Deterministic from `--seed` for a fixed thread count. At the end the weights are rounded to the
stored precision, evaluated zero-shot ("a photo of a {}.") on every toy benchmark's test split,
and saved compactly to `--out` (default `clip/pretrained/toyclip.pt`).

Usage: python -m tools.pretrain_toyclip [--steps 1300] [--seed 0] [--out clip/pretrained/toyclip.pt]
       python -m tools.pretrain_toyclip --rescore [--out clip/pretrained/toyclip.pt]

`--rescore` trains nothing: it re-evaluates an existing checkpoint zero-shot on every toy benchmark (after one is
added to `datasets.toy_world.TOY_DATASETS`) and rewrites only its `meta.zero_shot_test`; the weights are unchanged.
"""
from __future__ import annotations

import argparse
import itertools
import math
import os
import platform
import sys
import time
from pathlib import Path

# On a shared CPU, OpenMP's default spin-waiting makes 2 torch threads ~10x slower once the cores are
# oversubscribed (measured on a loaded 2-core machine: 22-33 s vs 1.2-3.6 s per batch-128 step); passive
# waiting costs nothing when they are not.
# It must be set before torch starts its thread pool, i.e. before `import torch`.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import open_clip
import torch
import torch.nn.functional as F
from PIL import Image

from clip import toyclip
from datasets import toy_world
from engine.utils.checkpoint import atomic_torch_save
from tools.cli import int_at_least

ZERO_SHOT_TEMPLATE = "a photo of a {}."


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of matching pairs; features `[B, D]`, L2-normalised."""
    logits = logit_scale.exp().clamp(max=100.0) * image_features @ text_features.t()
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on weight matrices only; none on embeddings, norms, biases, the temperature."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        (no_decay if param.ndim < 2 or "embedding" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def cosine_with_warmup(step: int, warmup: int, total: int) -> float:
    """LR multiplier: linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


class CaptionBatches:
    """Batches `(images [B, 3, 32, 32], tokens [B, 32])` from the toy world's caption stream."""

    def __init__(self, seed: int, batch_size: int):
        self.pairs = toy_world.caption_pairs(seed)
        self.batch_size = batch_size
        self.transform = toyclip.image_transform()
        self.tokenizer = toyclip.tokenizer()

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = list(itertools.islice(self.pairs, self.batch_size))
        images = torch.stack([self.transform(Image.fromarray(image)) for image, _ in pairs])
        return images, self.tokenizer([text for _, text in pairs])


@torch.no_grad()
def zero_shot_accuracy(
    model, spec: toy_world.ToyDatasetSpec, split: str = "test", template: str = ZERO_SHOT_TEMPLATE
) -> dict:
    """Zero-shot accuracy (%) with `template` on `split`: all classes, base half, new half.

    As in CoCoOp's base-to-new protocol, each half is classified among its own classes only.
    """
    transform, tokenize = toyclip.image_transform(), toyclip.tokenizer()
    classnames = [c.name for c in spec.classes]
    items = [(label, img) for name, label, _, _, img in toy_world.generate_split(spec) if name == split]
    labels = torch.tensor([label for label, _ in items])
    images = torch.stack([transform(Image.fromarray(img)) for _, img in items])
    image_features = F.normalize(model.encode_image(images), dim=-1)
    text_features = F.normalize(model.encode_text(tokenize([template.format(c) for c in classnames])), dim=-1)
    scores = image_features @ text_features.t()
    num_base = math.ceil(len(classnames) / 2)
    result = {"all": (scores.argmax(1) == labels).float().mean().item() * 100}
    for half, classes in (("base", range(num_base)), ("new", range(num_base, len(classnames)))):
        classes = torch.tensor(list(classes))
        mask = torch.isin(labels, classes)
        predicted = classes[scores[mask][:, classes].argmax(1)]
        result[half] = (predicted == labels[mask]).float().mean().item() * 100
    result["hm"] = 2 * result["base"] * result["new"] / max(result["base"] + result["new"], 1e-8)
    return {k: round(v, 2) for k, v in result.items()}


def train(args) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = toyclip.build_toyclip()
    model.train()
    optimizer = torch.optim.AdamW(param_groups(model, args.weight_decay), lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_with_warmup(step, args.warmup, args.steps)
    )
    batches = CaptionBatches(args.seed, args.batch_size)
    start = time.time()
    for step in range(args.steps):
        images, tokens = next(batches)
        image_features = model.encode_image(images, normalize=True)
        text_features = model.encode_text(tokens, normalize=True)
        loss = clip_loss(image_features, text_features, model.logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, math.log(100.0))
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            print(
                f"step {step + 1}/{args.steps}  loss {loss.item():.4f}  "
                f"scale {model.logit_scale.exp().item():.1f}  lr {scheduler.get_last_lr()[0]:.2e}  "
                f"{time.time() - start:.0f}s",
                flush=True,
            )
    return model.eval()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tools.pretrain_toyclip", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int_at_least(1), default=1300)
    parser.add_argument("--batch-size", type=int_at_least(2), default=128, help="pairs per contrastive batch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int_at_least(0), default=50)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--threads", type=int_at_least(1), default=2, help="torch CPU threads (results depend on it)")
    parser.add_argument("--log-every", type=int_at_least(1), default=25)
    parser.add_argument("--out", default=str(toyclip.DEFAULT_PATH))
    parser.add_argument("--rescore", action="store_true",
                        help="re-evaluate the checkpoint at --out zero-shot on every toy benchmark; no training")
    return parser


def check_out(path: Path, rescore: bool) -> None:
    """Refuse before any work: ``--rescore`` needs a toyclip checkpoint at ``path``, training a writable folder."""
    if rescore:
        toyclip.create_toyclip(path)  # FileNotFoundError / ValueError saying how to make one
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"Cannot create the folder of --out {path} ({e.strerror or e}); choose another --out.") from None
    if path.is_dir() or not os.access(path.parent, os.W_OK):
        raise OSError(f"Cannot write --out {path}: choose a writable file path.")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_out(Path(args.out), args.rescore)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    if args.rescore:
        rescore(Path(args.out))
        return 0
    pretrain(args)
    return 0


def pretrain(args: argparse.Namespace) -> dict:
    """Train, evaluate zero-shot and save to ``args.out``; returns the checkpoint's ``meta``."""
    start = time.time()
    model = train(args)
    train_time = time.time() - start
    toyclip.round_to_stored_precision(model)
    zero_shot = {name: zero_shot_accuracy(model, spec) for name, spec in toy_world.TOY_DATASETS.items()}
    meta = {
        "seed": args.seed,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "warmup": args.warmup,
        "weight_decay": args.weight_decay,
        "threads": args.threads,
        "train_time_s": round(train_time, 1),
        "zero_shot_template": ZERO_SHOT_TEMPLATE,
        "zero_shot_test": zero_shot,
        "versions": {
            "python": platform.python_version(),
            "torch": str(torch.__version__),
            "open_clip": str(open_clip.__version__),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(toyclip.compact_state(model, meta), str(out))
    reloaded = toyclip.create_toyclip(out).state_dict()
    mismatched = [k for k, v in model.state_dict().items() if not torch.equal(v, reloaded[k])]
    if mismatched:
        raise RuntimeError(f"the saved toyclip differs from the trained one in {mismatched}")
    print(f"trained {args.steps} steps in {train_time:.0f}s; saved {out} ({out.stat().st_size / 1e6:.2f} MB)")
    for name, result in zero_shot.items():
        print(f"zero-shot {name}: " + "  ".join(f"{k} {v:.2f}" for k, v in result.items()))
    return meta


def rescore(path: Path) -> dict:
    """Recompute `meta.zero_shot_test` of the checkpoint at `path` for every toy benchmark; rewrite it atomically.

    The stored tensors are written back unchanged (checked by reloading), so the model is the same.
    """
    checkpoint = torch.load(path, weights_only=True)
    model = toyclip.create_toyclip(path)
    zero_shot = {name: zero_shot_accuracy(model, spec) for name, spec in toy_world.TOY_DATASETS.items()}
    checkpoint["meta"]["zero_shot_test"] = zero_shot
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    torch.save(checkpoint, tmp)
    before, after = model.state_dict(), toyclip.create_toyclip(tmp).state_dict()
    if before.keys() != after.keys() or not all(torch.equal(v, after[k]) for k, v in before.items()):
        tmp.unlink()
        raise RuntimeError(f"rescoring {path} would change its weights; nothing was written")
    os.replace(tmp, path)
    for name, result in zero_shot.items():
        print(f"zero-shot {name}: " + "  ".join(f"{k} {v:.2f}" for k, v in result.items()))
    return checkpoint["meta"]


if __name__ == "__main__":
    sys.exit(main())
