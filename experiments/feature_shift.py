"""Feature shift of trained prompt learners against the frozen CLIP (RESTORE, arXiv 2403.06136, Figures 3-5).

    python -m tools.feature_shift --model-dir RUN_DIR [RUN_DIR ...] --out DIR [--split test|val] [--load-epoch E]
        [--classes base|new|all] [--max-batches N] [--tsne [--tsne-images N]] [KEY VALUE ...]

For each run directory (any trainer of this project): rebuild the trainer from ``RUN_DIR/config.yaml`` (trailing
``KEY VALUE`` pairs override it, e.g. ``DATASET.ROOT /data``), load its checkpoint, and on the chosen split measure

- per transformer block ``l`` and modality, the feature shift ``delta_l = ||M (H_l(x; P) - H_l(x; 0))||_F /
  ||M H_l(x; 0)||_F`` against the frozen CLIP on the same inputs (``trainers.feature_shift``): images over the whole
  split (CLS + patches), text over the class prompts (SOT, fixed text, class name, EOT; learned slots left out);
- the inter-modal discrepancy ``|delta^text_l - delta^vision_l|`` and ``sum_l (delta^text_l - delta^vision_l)^2``;
- the shift of the final L2-normalised features (after any module that follows the encoders, e.g. RESTORE's
  surgery block), the Gram norms ``||P_l^T P_l||_F`` of the deep prompts (relative to the first step where the run
  saved them, i.e. RESTORE), the model's accuracy and the frozen CLIP's accuracy with the reference prompts.

A modality without prompts has shift exactly 0 at every block (``"prompted": false``); a shift that cannot be
measured is ``null`` with ``"undefined_reason"`` (CoCoOp-style image-conditioned text, a ResNet image tower, a text
layout that differs from its reference). Gram norms are ``null`` at blocks without a deep prompt.

Writes ``DIR/<run>/feature_shift.json`` and ``.png`` per run; with several runs also ``DIR/feature_shift.png``
(curves overlaid) and ``DIR/discrepancy_vs_accuracy.png``; with ``--tsne`` ``DIR/<run>/tsne.png``: a t-SNE of image
and text features of the base and new classes (run on all classes), frozen CLIP next to the trained model.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from tools.cli import int_at_least

logger = logging.getLogger("feature_shift")

SCHEMA_VERSION = 1
CLASS_CHOICES = ("base", "new", "all")


class AnalysisError(RuntimeError):
    """A run that cannot be analysed; the message says what to do."""


# ---------------------------------------------------------------------------------------------------------------
# Rebuilding a run
# ---------------------------------------------------------------------------------------------------------------

def load_run_cfg(run_dir: Path, out_dir: Path, opts: Sequence[str] = ()):
    """The run's resolved config from ``RUN_DIR/config.yaml`` plus ``opts``; OUTPUT_DIR points at ``out_dir``."""
    from engine.config import ConfigError, build_cfg

    path = run_dir / "config.yaml"
    if not path.is_file():
        raise AnalysisError(f"No config at {path}. --model-dir must be the output directory of a `python train.py` "
                            "run (train.py writes config.yaml there).")
    try:
        return build_cfg("", str(path), list(opts), output_dir=str(out_dir))
    except ConfigError as e:
        raise AnalysisError(f"Cannot rebuild the config of {run_dir}: {e}") from None


def build_loaded_trainer(cfg, run_dir: Path, load_epoch: Optional[int]):
    """The trainer of ``cfg`` with the run's checkpoint loaded (nothing to load for zero-shot CLIP)."""
    from engine import build_trainer
    from engine.utils import set_random_seed

    set_random_seed(cfg.SEED)
    trainer = build_trainer(cfg)
    if trainer.get_model_names():
        trainer.load_model(str(run_dir), epoch=load_epoch)
    trainer.set_model_mode("eval")
    return trainer


def split_loader(trainer, split: str):
    if split == "val":
        if trainer.val_loader is None:
            raise AnalysisError(f"{trainer.cfg.DATASET.NAME} has no validation split here; use --split test.")
        return trainer.val_loader
    return trainer.test_loader


# ---------------------------------------------------------------------------------------------------------------
# What a trainer puts into each tower
# ---------------------------------------------------------------------------------------------------------------

@dataclass
class Side:
    """One modality of one trainer: prompted per-block outputs against the frozen ones."""

    prompted: bool = False
    undefined_reason: Optional[str] = None
    num: List[float] = field(default_factory=list)  # per block: sum ||M (H - H0)||^2
    den: List[float] = field(default_factory=list)  # per block: sum ||M H0||^2
    out_num: float = 0.0
    out_den: float = 0.0
    deep_blocks: List[int] = field(default_factory=list)
    gram: Dict[int, float] = field(default_factory=dict)
    relative_gram: Dict[int, float] = field(default_factory=dict)
    note: Optional[str] = None

    def add(self, layer_sums: Sequence[Tuple[torch.Tensor, torch.Tensor]]) -> None:
        if not self.num:
            self.num, self.den = [0.0] * len(layer_sums), [0.0] * len(layer_sums)
        for i, (n, d) in enumerate(layer_sums):
            self.num[i] += float(n)
            self.den[i] += float(d)

    def per_block(self, n_blocks: int) -> List[Optional[float]]:
        if self.undefined_reason is not None:
            return [None] * n_blocks
        if not self.prompted:
            return [0.0] * n_blocks
        return [math.sqrt(n) / math.sqrt(d) if d > 0 else None for n, d in zip(self.num, self.den)]

    def output_shift(self) -> Optional[float]:
        if not self.prompted:  # the frozen CLIP's own features
            return 0.0
        return math.sqrt(self.out_num) / math.sqrt(self.out_den) if self.out_den > 0 else None

    def to_dict(self, n_blocks: int) -> dict:
        return {
            "prompted": self.prompted,
            "undefined_reason": self.undefined_reason,
            "note": self.note,
            "feature_shift": self.per_block(n_blocks),
            "output_shift": self.output_shift(),
            "deep_prompt_blocks": self.deep_blocks,
            "gram_norm": [self.gram.get(b) for b in range(n_blocks)],
            "relative_gram_shift": [self.relative_gram.get(b) for b in range(n_blocks)],
        }


def _text_reference_module(learner):
    """The first submodule of the prompt learner that holds the class prompts' token ids (CoOp-family layout)."""
    for module in learner.modules():
        if isinstance(getattr(module, "tokenized_prompts", None), torch.Tensor):
            return module
    return None


def _gram_entries(side: Side, deep, reference: Optional[torch.Tensor]) -> None:
    from trainers.feature_shift import deep_prompt_layers, gram_norm

    layers = deep_prompt_layers(deep)
    side.deep_blocks = [b for b, _ in layers]
    for k, (block, p) in enumerate(layers):
        side.gram[block] = float(gram_norm(p))
        if reference is not None and k < reference.numel():
            side.relative_gram[block] = side.gram[block] / float(reference[k])


def _saved_gram_reference(trainer, modality: str) -> Optional[torch.Tensor]:
    ref = getattr(trainer, "fsc_reference", None)
    if ref is None or not bool(getattr(ref, "captured", False)):
        return None
    return getattr(ref, modality)


@torch.no_grad()
def measure_text(trainer, frozen) -> Tuple[Side, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``(text side, model text features [C, D], reference text features [C, D])``, both L2-normalised."""
    from trainers.feature_shift import shift_sums, text_content_mask
    from trainers.prompt_types import TextPrompts

    side = Side()
    learner = getattr(trainer, "prompt_learner", None)
    reference_fallback = F.normalize(trainer.zeroshot_text_features().float(), dim=-1)
    if learner is None:
        side.note = "no prompt learner: the text tower is the frozen CLIP"
        return side, reference_fallback, reference_fallback
    if getattr(trainer, "IMAGE_CONDITIONED_TEXT", False):
        side.prompted = True
        side.undefined_reason = ("text prompts are conditioned on each image (CoCoOp-style): there is no single "
                                 "per-class text input to compare")
        return side, None, reference_fallback
    prompts = trainer.text_prompts()
    if not isinstance(prompts, TextPrompts):
        side.note = "the trainer puts no prompts into the text tower: shift 0 by definition"
        return side, reference_fallback, reference_fallback
    side.prompted = True
    _gram_entries(side, prompts.deep, _saved_gram_reference(trainer, "text"))
    model_features = F.normalize(trainer.text_features().float(), dim=-1)
    owner = _text_reference_module(learner)
    if owner is None:
        side.undefined_reason = "the prompt learner exposes no tokenized_prompts to build the prompt-free reference"
        return side, model_features, reference_fallback
    reference, eot = frozen.text(owner.tokenized_prompts)
    reference_features = F.normalize(frozen.backbone.encode_text(owner.tokenized_prompts).float(), dim=-1)
    side.out_num = float((model_features - reference_features).pow(2).sum())
    side.out_den = float(reference_features.pow(2).sum())
    if not torch.equal(prompts.eot_index.to(eot.device), eot):
        side.undefined_reason = ("the prompted text has a different token layout from its reference tokens (e.g. "
                                 "learned label tokens), so block outputs cannot be compared position by position")
        return side, model_features, reference_features
    if getattr(owner, "class_token_position", "end") == "end":
        n_slots = int(getattr(owner, "n_ctx", 0))
    else:
        n_slots = 0
        side.note = "class token not at the end: learned slots are compared too"
    _, hidden = trainer.clip_model.encode_text_from_embeddings(prompts.embeddings, prompts.eot_index, prompts.deep,
                                                              return_hidden=True)
    mask = text_content_mask(eot, n_slots, reference[0].shape[1])
    side.add([shift_sums(h, r, mask) for h, r in zip(hidden, reference)])
    return side, model_features, reference_features


@dataclass
class SplitPass:
    vision: Side
    correct: int = 0
    zeroshot_correct: int = 0
    total: int = 0


@torch.no_grad()
def measure_split(trainer, frozen, loader, reference_text: torch.Tensor, max_batches: Optional[int]) -> SplitPass:
    """Vision-side shifts, model accuracy and frozen-CLIP accuracy over ``loader``."""
    from trainers.feature_shift import shift_sums

    prompts = trainer.vision_prompts()
    side = Side(prompted=prompts.prompts is not None)
    if side.prompted:
        _gram_entries(side, prompts.deep, _saved_gram_reference(trainer, "vision"))
    else:
        side.note = "no vision prompts: the image tower is the frozen CLIP"
    if not trainer.clip_model.is_vit:
        side.undefined_reason = "ResNet image tower: no transformer blocks to compare"
    result = SplitPass(vision=side)
    trainer.before_test()
    try:
        for i, batch in enumerate(loader):
            if max_batches is not None and i >= max_batches:
                break
            images, labels = trainer.parse_batch_test(batch)
            logits = trainer.model_inference(images)
            f0, reference = frozen.image(images)
            f0 = F.normalize(f0.float(), dim=-1)
            result.correct += int((logits.argmax(1) == labels).sum())
            result.zeroshot_correct += int(((f0 @ reference_text.t()).argmax(1) == labels).sum())
            result.total += len(labels)
            if side.prompted:
                f = F.normalize(trainer.image_features(images).float(), dim=-1)
                side.out_num += float((f - f0).pow(2).sum())
                side.out_den += float(f0.pow(2).sum())
                if side.undefined_reason is None:
                    _, hidden = trainer.clip_model.encode_image(images, prompts.prompts, prompts.deep,
                                                                return_hidden=True)
                    side.add([shift_sums(h, r) for h, r in zip(hidden, reference)])
    finally:
        trainer.after_test()
    if result.total == 0:
        raise AnalysisError("The split holds no images to measure.")
    return result


def discrepancy(text: Sequence[Optional[float]], vision: Sequence[Optional[float]]) -> dict:
    """Per block ``|delta_t - delta_v|`` (``None`` where either is undefined) and ``sum (delta_t - delta_v)^2``."""
    per_block = [abs(t - v) if t is not None and v is not None else None for t, v in zip(text, vision)]
    defined = [d for d in per_block if d is not None]
    return {"per_block": per_block, "sum_squared": sum(d * d for d in defined) if defined else None,
            "mean_abs": sum(defined) / len(defined) if defined else None, "n_blocks": len(defined)}


def analyse(trainer, run_dir: Path, split: str, max_batches: Optional[int]) -> dict:
    """The JSON record of one loaded trainer (see the module docstring)."""
    from trainers.feature_shift import FrozenReference

    cfg = trainer.cfg
    frozen = FrozenReference(trainer.clip_model)
    n_blocks = max(trainer.clip_model.text_layers, trainer.clip_model.vision_layers)
    with trainer.precision.autocast():
        text, _, reference_text = measure_text(trainer, frozen)
        result = measure_split(trainer, frozen, split_loader(trainer, split), reference_text, max_batches)
    t_shift = text.per_block(trainer.clip_model.text_layers) + [None] * (n_blocks - trainer.clip_model.text_layers)
    v_shift = result.vision.per_block(trainer.clip_model.vision_layers)
    v_shift += [None] * (n_blocks - len(v_shift))
    record = {
        "schema_version": SCHEMA_VERSION,
        "run_dir": str(run_dir),
        "trainer": cfg.TRAINER.NAME,
        "dataset": cfg.DATASET.NAME,
        "backbone": cfg.MODEL.BACKBONE.NAME,
        "seed": cfg.SEED,
        "split": split,
        "subsample_classes": cfg.DATASET.SUBSAMPLE_CLASSES,
        "num_classes": trainer.num_classes,
        "num_images": result.total,
        "accuracy": 100.0 * result.correct / result.total,
        "zeroshot_accuracy": 100.0 * result.zeroshot_correct / result.total,
        "blocks": list(range(n_blocks)),
        "text": text.to_dict(n_blocks),
        "vision": result.vision.to_dict(n_blocks),
        "discrepancy": discrepancy(t_shift, v_shift),
    }
    record["text"]["feature_shift"], record["vision"]["feature_shift"] = t_shift, v_shift
    t_rel, v_rel = record["text"]["relative_gram_shift"], record["vision"]["relative_gram_shift"]
    paired = [(t, v) for t, v in zip(t_rel, v_rel) if t is not None and v is not None]
    record["gram_fsc"] = sum((t - v) ** 2 for t, v in paired) if paired else None
    return record


# ---------------------------------------------------------------------------------------------------------------
# t-SNE (Figure 5)
# ---------------------------------------------------------------------------------------------------------------

@torch.no_grad()
def tsne_features(trainer, max_images: int) -> dict:
    """Normalised image and text features of the model and of the frozen CLIP, with base/new flags per class."""
    from trainers.feature_shift import FrozenReference

    frozen = FrozenReference(trainer.clip_model)
    n_base = math.ceil(trainer.num_classes / 2)  # base = the first ceil(K/2) labels (datasets.base)
    images, labels, model_img, frozen_img = 0, [], [], []
    with trainer.precision.autocast():
        _, model_txt, frozen_txt = measure_text(trainer, frozen)
        trainer.before_test()
        for batch in trainer.test_loader:
            x, y = trainer.parse_batch_test(batch)
            model_img.append(F.normalize(trainer.image_features(x).float(), dim=-1))
            frozen_img.append(F.normalize(frozen.image(x)[0].float(), dim=-1))
            labels.append(y)
            images += len(y)
            if images >= max_images:
                break
        trainer.after_test()
    labels_t = torch.cat(labels)[:max_images].cpu()
    return {
        "model": (torch.cat(model_img)[:max_images].cpu(), model_txt.cpu()),
        "frozen": (torch.cat(frozen_img)[:max_images].cpu(), frozen_txt.cpu()),
        "image_is_base": (labels_t < n_base).numpy(),
        "text_is_base": (torch.arange(trainer.num_classes) < n_base).numpy(),
    }


def plot_tsne(data: dict, title: str, out: Path, seed: int = 0) -> Path:
    import numpy as np
    from sklearn.manifold import TSNE

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, key, name in zip(axes, ("frozen", "model"), ("frozen CLIP", "trained")):
        img, txt = data[key]
        points = np.concatenate([img.numpy(), txt.numpy()])
        perplexity = float(min(30.0, max(2.0, (len(points) - 1) / 3)))
        method = "exact" if len(points) <= 300 else "barnes_hut"  # exact is faster (and exact) for few points
        xy = TSNE(n_components=2, perplexity=perplexity, init="pca", method=method,
                  random_state=seed).fit_transform(points)
        xi, xt = xy[:len(img)], xy[len(img):]
        for is_base, color, label in ((True, "tab:blue", "base"), (False, "tab:orange", "new")):
            m_img, m_txt = data["image_is_base"] == is_base, data["text_is_base"] == is_base
            ax.scatter(xi[m_img, 0], xi[m_img, 1], s=6, alpha=0.5, color=color, label=f"image ({label})")
            ax.scatter(xt[m_txt, 0], xt[m_txt, 1], s=90, marker="*", edgecolor="k", linewidth=0.5,
                       color=color, label=f"text ({label})")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].legend(loc="best", fontsize=8)
    fig.suptitle(title)
    return _save(fig, out)


# ---------------------------------------------------------------------------------------------------------------
# Figures 3-4
# ---------------------------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150, bbox_inches="tight")
    _pyplot().close(fig)
    return out


def run_label(record: dict) -> str:
    return f"{record['trainer']} ({record['dataset']}, seed {record['seed']})"


def _curve(values: Sequence[Optional[float]]):
    xs = [i for i, v in enumerate(values) if v is not None]
    return xs, [values[i] for i in xs]


def plot_shift(records: Sequence[dict], out: Path) -> Path:
    """Left: per-block feature shift, text (solid) and vision (dashed); right: per-block discrepancy."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(records)
    for i, rec in enumerate(records):
        color = f"C{i % 10}"
        label = run_label(rec) if len(records) > 1 else None
        for side, style in (("text", "-o"), ("vision", "--s")):
            xs, ys = _curve(rec[side]["feature_shift"])
            left.plot(xs, ys, style, color=color, markersize=4, label=f"{label or ''} {side}".strip())
        xs, ys = _curve(rec["discrepancy"]["per_block"])
        right.bar([x + (i - (len(records) - 1) / 2) * width for x in xs], ys, width=width, color=color, label=label)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_xlabel("transformer block")
    left.set_ylabel("feature shift  ||H(x;P) - H(x;0)|| / ||H(x;0)||")
    left.legend(fontsize=8)
    right.set_xlabel("transformer block")
    right.set_ylabel("|shift(text) - shift(vision)|")
    if len(records) > 1:
        right.legend(fontsize=8)
    if len(records) == 1:
        rec = records[0]
        fig.suptitle(f"{run_label(rec)}: {rec['split']} accuracy {rec['accuracy']:.2f}% "
                     f"(frozen CLIP {rec['zeroshot_accuracy']:.2f}%), "
                     f"sum of squared discrepancies {_fmt(rec['discrepancy']['sum_squared'])}")
    return _save(fig, out)


def _fmt(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def plot_discrepancy_vs_accuracy(records: Sequence[dict], out: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, rec in enumerate(records):
        d = rec["discrepancy"]["sum_squared"]
        if d is None:
            continue
        ax.scatter([d], [rec["accuracy"]], color=f"C{i % 10}", s=40)
        ax.annotate(run_label(rec), (d, rec["accuracy"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("inter-modal discrepancy  sum_l (shift_text - shift_vision)^2")
    ax.set_ylabel("accuracy (%)")
    return _save(fig, out)


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------

def run_name(index: int, cfg) -> str:
    raw = f"{index}_{cfg.TRAINER.NAME}_{cfg.DATASET.NAME}_{cfg.DATASET.SUBSAMPLE_CLASSES}_seed{cfg.SEED}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)


def analyse_run(index: int, run_dir: Path, out: Path, args) -> dict:
    opts = list(args.opts)
    if args.classes:
        opts += ["DATASET.SUBSAMPLE_CLASSES", args.classes]
    cfg = load_run_cfg(run_dir, out, opts)
    run_out = out / run_name(index, cfg)
    trainer = build_loaded_trainer(cfg, run_dir, args.load_epoch)
    record = analyse(trainer, run_dir, args.split, args.max_batches)
    record["load_epoch"] = args.load_epoch
    run_out.mkdir(parents=True, exist_ok=True)
    (run_out / "feature_shift.json").write_text(json.dumps(record, indent=2) + "\n")
    plot_shift([record], run_out / "feature_shift.png")
    if args.tsne and getattr(trainer, "IMAGE_CONDITIONED_TEXT", False):
        print(f"{run_label(record)}: no t-SNE, its text features are conditioned on each image.")
    elif args.tsne:
        cfg_all = load_run_cfg(run_dir, out, list(args.opts) + ["DATASET.SUBSAMPLE_CLASSES", "all"])
        data = tsne_features(build_loaded_trainer(cfg_all, run_dir, args.load_epoch), args.tsne_images)
        plot_tsne(data, f"{run_label(record)}: image (dots) and text (stars) features, test split",
                  run_out / "tsne.png")
    print(f"{run_label(record)}: accuracy {record['accuracy']:.2f}% on {record['num_images']} {args.split} images, "
          f"discrepancy {_fmt(record['discrepancy']['sum_squared'])} -> {run_out}")
    return record


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.feature_shift", description=__doc__.split("\n")[0])
    p.add_argument("--model-dir", nargs="+", required=True, help="output directories of train.py runs")
    p.add_argument("--out", required=True, help="where the JSON files and figures go")
    p.add_argument("--split", choices=("test", "val"), default="test")
    p.add_argument("--load-epoch", type=int, default=None, help="checkpoint epoch (default: the newest)")
    p.add_argument("--classes", choices=CLASS_CHOICES, default=None,
                   help="class set to measure on (default: the run's DATASET.SUBSAMPLE_CLASSES)")
    p.add_argument("--max-batches", type=int_at_least(1), default=None, help="measure on the first N batches only")
    p.add_argument("--tsne", action="store_true", help="also plot a t-SNE of image and text features")
    p.add_argument("--tsne-images", type=int_at_least(2), default=1000, help="test images in the t-SNE (first N)")
    p.add_argument("--verbose", action="store_true", help="show the trainers' logs")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ... (e.g. DATASET.ROOT /data)")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.opts) % 2:
        print(f"error: config overrides must be KEY VALUE pairs, got {args.opts}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    from engine.errors import user_error_types
    from engine.utils import CheckpointError

    out = Path(args.out).expanduser().resolve()
    records = []
    try:
        for i, run_dir in enumerate(args.model_dir):
            records.append(analyse_run(i, Path(run_dir).expanduser().resolve(), out, args))
    except (AnalysisError, CheckpointError, FileNotFoundError, KeyError, *user_error_types()) as e:
        print(f"error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    if len(records) > 1:
        plot_shift(records, out / "feature_shift.png")
        plot_discrepancy_vs_accuracy(records, out / "discrepancy_vs_accuracy.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
