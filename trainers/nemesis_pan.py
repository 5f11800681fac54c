"""PAN's pre-inference: how many images of the current batch each copy of the context gets right.

Nemesis's ``update_alpha`` (ShyFoo/Nemesis) builds ``1 + K`` copies of the context (copy 0 unmodified, copy k with
one position rescaled, see ``nemesis_loss.rescaled_variants``) and runs them on the training batch without
gradients. Two scorers, chosen by what the prompt learner offers:

- :class:`BatchedTextScorer` (text independent of the image, learner with CoOp's ``assemble``): the
  ``(1 + K) * C`` prompts go through the text encoder as one batch, split into chunks of at most ``chunk`` prompts
  to bound memory, plus one image-encoder pass; this is the released code's single batched pass.
- :class:`SwappedContextScorer` (any learner with a ``ctx`` parameter, e.g. CoCoOp's image-conditioned prompts):
  the trainer's own ``logits`` once per copy, with the value of ``ctx`` swapped in.

Both return the top-1 hits per copy, ``correct [1 + K]`` (long).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F


def _hits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``logits [V, B, C]``, ``labels [B]`` -> top-1 hits per copy ``[V]``."""
    return (logits.argmax(dim=-1) == labels.unsqueeze(0)).sum(dim=-1)


class BatchedTextScorer:
    def __init__(self, trainer, chunk: int):
        if chunk < 1:
            raise ValueError(f"TRAINER.NEMESIS.PAN_CHUNK is {chunk}; it must be at least 1 (prompts per text pass).")
        self.trainer = trainer
        self.chunk = chunk

    @torch.no_grad()
    def text_features(self, variants: torch.Tensor) -> torch.Tensor:
        """``variants [V, M, d]`` (or ``[V, C, M, d]``) -> class text features ``[V, C, D]``."""
        learner = self.trainer.prompt_learner
        n_cls = learner.n_cls
        per_group = max(1, self.chunk // n_cls)  # whole copies per group, so at most max(chunk, C) prompts exist
        feats = []
        for start in range(0, len(variants), per_group):
            group = variants[start:start + per_group]
            prompts = torch.cat([learner.assemble(self._per_class(v, n_cls)) for v in group])  # [g*C, L, d]
            eot = learner.eot_index.repeat(len(group))
            for s in range(0, prompts.shape[0], self.chunk):
                feats.append(self.trainer.clip_model.encode_text_from_embeddings(prompts[s:s + self.chunk],
                                                                                 eot[s:s + self.chunk]).float())
        return torch.cat(feats).view(len(variants), n_cls, -1)

    @staticmethod
    def _per_class(ctx: torch.Tensor, n_cls: int) -> torch.Tensor:
        return ctx.unsqueeze(0).expand(n_cls, -1, -1) if ctx.dim() == 2 else ctx

    @torch.no_grad()
    def correct(self, images: torch.Tensor, labels: torch.Tensor, variants: torch.Tensor) -> torch.Tensor:
        img = F.normalize(self.trainer.image_features(images).float(), dim=-1)  # [B, D]
        txt = F.normalize(self.text_features(variants), dim=-1)  # [V, C, D]
        return _hits(torch.einsum("bd,vcd->vbc", img, txt), labels)


@contextlib.contextmanager
def context_value(learner, value: torch.Tensor):
    """Temporarily give ``learner.ctx`` the value ``value`` (same shape); restored on exit."""
    saved = learner.ctx.data
    learner.ctx.data = value
    try:
        yield
    finally:
        learner.ctx.data = saved


class SwappedContextScorer:
    def __init__(self, trainer):
        self.trainer = trainer

    @torch.no_grad()
    def correct(self, images: torch.Tensor, labels: torch.Tensor, variants: torch.Tensor) -> torch.Tensor:
        learner = self.trainer.prompt_learner
        logits = []
        for v in variants:
            with context_value(learner, v):
                logits.append(self.trainer.logits(images).float())
        return _hits(torch.stack(logits), labels)
