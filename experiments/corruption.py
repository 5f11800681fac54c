"""Nemesis's corruption study on any trained CoOp-family run: corrupt ONE context position, re-evaluate.

    python -m tools.corruption --model-dir RUN_DIR [--load-epoch E] [--positions 0 1 2] [--replace 0 1e-4]
        [--rescale 0.001 0.1 0.5] [--split test] [--root DATA] [--noise-seed 0] [--out FILE.json] [KEY VALUE ...]

The run is rebuilt from ``RUN_DIR/config.yaml`` (written by ``train.py``; trailing ``KEY VALUE`` pairs override it,
e.g. ``DATASET.SUBSAMPLE_CLASSES new``) and its checkpoint is loaded with ``load_model``. Works for every trainer
whose prompt learner holds the learned context as ``prompt_learner.ctx`` (``[M, d]``, or ``[C, M, d]`` with CSC):
CoOp, CoCoOp and Nemesis. For each position j and setting (Fu et al., ICLR 2024, §3; released trainer
``CoOpCRT`` of ShyFoo/Nemesis; docs/NEMESIS.md):

- REPLACE sigma: ``P_j <- sigma * z_j`` with ``z ~ N(0, I)`` of the context's shape, drawn once from
  ``--noise-seed`` (every sigma uses the same direction at a position); ``sigma = 0`` gives the zero vector.
- RESCALE f: ``P_j <- f * P_j``.

The Low-Norm Effect is reported where a corruption that lowers ``||P_j||`` raises the accuracy strictly above the
original one. Results go to ``--out`` (default ``RUN_DIR/corruption.json``); a table is printed.

Unlike the released ``CoOpCRT`` (which cannot run as released: wrong trainer name in its script, the ``scale`` /
``rescale`` mismatch, no ``original`` branch), every setting runs in one process, and when the text features do
not depend on the image (CoOp, Nemesis over CoOp) the test images are encoded once for all settings.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Sequence

import torch

OUT_NAME = "corruption.json"


class CorruptionError(ValueError):
    """A request the study cannot serve; the message says what to change."""


# ---- the run ---------------------------------------------------------------------------------------------------
def require_learned_context(trainer) -> None:
    """Refuse a trainer without a learned text context (``prompt_learner.ctx``), the tensor the study corrupts."""
    learner = getattr(trainer, "prompt_learner", None)
    if not isinstance(getattr(learner, "ctx", None), torch.nn.Parameter):
        raise CorruptionError(f"Trainer {trainer.cfg.TRAINER.NAME} has no learned text context (prompt_learner.ctx); "
                              "the corruption study applies to CoOp-family runs (CoOp, CoCoOp, Nemesis).")


# ---- evaluation ------------------------------------------------------------------------------------------------
def images_encoded_once(trainer) -> bool:
    """Whether corrupting the context leaves the image features unchanged, so the test images can be encoded once:
    the image path is frozen (``FROZEN_IMAGE_FEATURES``; MaPLe's vision prompts are projections of ``ctx``), the
    text does not depend on the image, and the trainer keeps ``PromptTrainer``'s logits."""
    from trainers.base import PromptTrainer

    return (trainer.FROZEN_IMAGE_FEATURES and not trainer.IMAGE_CONDITIONED_TEXT
            and type(trainer).logits is PromptTrainer.logits
            and type(trainer).logits_from_features is PromptTrainer.logits_from_features)


def accuracy_function(trainer, loader) -> Callable[[], float]:
    """A function giving the top-1 accuracy (%) of the trainer's current prompts on ``loader``.

    When :func:`images_encoded_once` holds, the image features are computed once here and each call only re-encodes
    the class prompts; otherwise each call runs the trainer's own evaluation path (``before_test``,
    ``model_inference``, ``after_test``).
    """
    from trainers.base import clip_logits

    if images_encoded_once(trainer):
        feats, labels = [], []
        with torch.no_grad(), trainer.precision.autocast():
            for batch in loader:
                images, y = trainer.parse_batch_test(batch)
                feats.append(trainer.image_features(images).float())
                labels.append(y)
        feats, labels = torch.cat(feats), torch.cat(labels)

        def cached() -> float:
            with torch.no_grad(), trainer.precision.autocast():
                logits = clip_logits(feats, trainer.text_features().float(), trainer.logit_scale)
            return 100.0 * int((logits.argmax(dim=-1) == labels).sum()) / labels.numel()

        return cached

    def full() -> float:
        correct = total = 0
        with torch.no_grad():
            trainer.before_test()
            for batch in loader:
                images, y = trainer.parse_batch_test(batch)
                correct += int((trainer.model_inference(images).argmax(dim=-1) == y).sum())
                total += y.numel()
            trainer.after_test()
        return 100.0 * correct / max(total, 1)

    return full


# ---- corruptions -----------------------------------------------------------------------------------------------
def corrupted(ctx: torch.Tensor, kind: str, value: float, position: int, noise: torch.Tensor) -> torch.Tensor:
    """A copy of ``ctx`` with position ``position`` replaced by ``value * noise[..., position, :]`` (REPLACE) or
    multiplied by ``value`` (RESCALE)."""
    out = ctx.detach().clone()
    if kind == "replace":
        out[..., position, :] = value * noise[..., position, :]
    elif kind == "rescale":
        out[..., position, :] *= value
    else:
        raise CorruptionError(f'Unknown corruption "{kind}"; use replace or rescale.')
    return out


def position_norm(ctx: torch.Tensor, position: int) -> float:
    """``||P_j||_2``, averaged over classes with class-specific context."""
    return float(torch.linalg.vector_norm(ctx.detach()[..., position, :].float(), dim=-1).mean())


def setting_label(kind: str, value: float) -> str:
    return f"replace std={value:g}" if kind == "replace" else f"rescale x{value:g}"


def run_study(trainer, accuracy: Callable[[], float], positions: Sequence[int], replace: Sequence[float],
              rescale: Sequence[float], noise_seed: int = 0) -> dict:
    """Accuracy of the original prompt and of every (setting, position); flags where the Low-Norm Effect appears."""
    ctx = trainer.prompt_learner.ctx
    n_ctx = ctx.shape[-2]
    bad = [p for p in positions if not 0 <= p < n_ctx]
    if bad:
        raise CorruptionError(f"--positions {bad} out of range: this prompt has {n_ctx} context positions "
                              f"(0..{n_ctx - 1}).")
    original_ctx = ctx.detach().clone()
    noise = torch.randn(ctx.shape, generator=torch.Generator().manual_seed(noise_seed)).to(ctx.device, ctx.dtype)
    original = accuracy()
    results: List[dict] = []
    try:
        for kind, values in (("replace", replace), ("rescale", rescale)):
            for value in values:
                for j in positions:
                    with torch.no_grad():
                        ctx.copy_(corrupted(original_ctx, kind, value, j, noise))
                    acc = accuracy()
                    before, after = position_norm(original_ctx, j), position_norm(ctx, j)
                    results.append({
                        "corruption": kind, "value": value, "position": j, "accuracy": acc,
                        "delta": acc - original, "norm_before": before, "norm_after": after,
                        "improves": acc > original, "low_norm_effect": acc > original and after < before,
                    })
    finally:
        with torch.no_grad():
            ctx.copy_(original_ctx)
    effect: Dict[str, List[int]] = {}
    for r in results:
        label = setting_label(r["corruption"], r["value"])
        effect.setdefault(label, [])
        if r["low_norm_effect"]:
            effect[label].append(r["position"])
    return {
        "n_ctx": n_ctx,
        "context_norms": [position_norm(original_ctx, j) for j in range(n_ctx)],
        "original_accuracy": original,
        "noise_seed": noise_seed,
        "results": results,
        "low_norm_effect": effect,
    }


# ---- report ----------------------------------------------------------------------------------------------------
def format_report(study: dict) -> str:
    """A positions x settings table of accuracies (``*``: Low-Norm Effect) and one summary line per setting."""
    from tabulate import tabulate

    labels = list(study["low_norm_effect"])
    cells: Dict[int, Dict[str, str]] = {}
    for r in study["results"]:
        mark = " *" if r["low_norm_effect"] else ""
        cells.setdefault(r["position"], {})[setting_label(r["corruption"], r["value"])] = \
            f"{r['accuracy']:.2f} ({r['delta']:+.2f}){mark}"
    rows = [[j, f"{study['context_norms'][j]:.3f}"] + [cells[j].get(label, "") for label in labels]
            for j in sorted(cells)]
    lines = [f"Original accuracy: {study['original_accuracy']:.2f}%",
             tabulate(rows, headers=["position", "norm"] + labels, tablefmt="github"),
             "Low-Norm Effect (norm lowered, accuracy strictly above the original), marked *:"]
    for label, positions in study["low_norm_effect"].items():
        where = f"positions {positions}" if positions else "not observed"
        lines.append(f"  {label}: {where}")
    return "\n".join(lines)
