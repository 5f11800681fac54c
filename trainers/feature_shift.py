"""Feature-shift measures of RESTORE (Yang et al., arXiv 2403.06136), shared by the trainer and ``tools.feature_shift``.

Two ways to say how far the learned prompts move one modality at transformer block ``l``:

- ``gram`` (the released code's proxy, ``trainers/maple_fsa.py`` of ``Yaphabates/RESTORE_``): the Gram norm
  ``g(P_l) = ||P_l^T P_l||_F`` of the prompt ``P_l [n, d]`` inserted at block ``l``, relative to its value at the
  first training step: ``s_l = g(P_l) / g(P_l^(0))``. ``||P^T P||_F = ||P P^T||_F`` (both are
  ``sqrt(sum_i sigma_i^4)``), so the ``[n, n]`` Gram matrix is used.
- ``feature`` (the paper's definition: the change of a block's output caused by the prompts): with ``H_l(x; P)``
  the output of block ``l`` with the prompts and ``H_l(x; 0)`` the frozen CLIP's on the same input,
  ``delta_l = ||M (H_l(x; P) - H_l(x; 0))||_F / ||M H_l(x; 0)||_F``, where ``M`` keeps the tokens both runs share:
  image: CLS and patches (appended prompt tokens dropped); text: SOT and the positions after the learned slots up to
  and including EOT (the learned slots and the padding after EOT are dropped).

Feature-shift consistency (FSC): ``L_FSC = sum_l (s^text_l - s^vision_l)^2`` over the paired blocks - a plain sum,
not a mean; gradients flow through both terms.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

SHIFT_MEASURES = ("gram", "feature")


# ---- gram ----------------------------------------------------------------------------------------------------
def gram_norm(prompt: torch.Tensor) -> torch.Tensor:
    """``||P^T P||_F`` of ``P [n, d]`` (fp32 scalar), computed as ``||P P^T||_F``."""
    p = prompt.float()
    return torch.linalg.matrix_norm(p @ p.t())


def deep_prompt_layers(deep: Optional[Sequence[Optional[torch.Tensor]]]) -> List[Tuple[int, torch.Tensor]]:
    """``(block, P_block)`` for every block ``>= 1`` that receives a deep prompt, from the backbone's per-block list
    ``[None, P_1, ..., P_{J-1}]`` (``None`` entries are skipped)."""
    return [(i, p) for i, p in enumerate(deep or []) if i >= 1 and p is not None]


def gram_norms(prompts: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[g(P_1), ..., g(P_k)]`` as a ``[k]`` tensor (empty for no prompts)."""
    if not prompts:
        return torch.zeros(0)
    return torch.stack([gram_norm(p) for p in prompts])


def relative_gram_shift(prompts: Sequence[torch.Tensor], initial_norms: torch.Tensor) -> torch.Tensor:
    """``s_l = g(P_l) / g(P_l^(0))`` per block, ``[k]``; ``initial_norms [k]`` are constants (no gradient)."""
    norms = gram_norms(prompts)
    if norms.shape != initial_norms.shape:
        raise ValueError(f"{norms.numel()} deep prompts but {initial_norms.numel()} initial Gram norms: the prompt "
                         "depth differs from the one the reference was captured with.")
    return norms / initial_norms.detach().to(norms.device)


def fsc_loss(text_shift: torch.Tensor, vision_shift: torch.Tensor) -> torch.Tensor:
    """``L_FSC = sum_l (s^t_l - s^v_l)^2`` over paired blocks (``[k]`` each; the shorter length is used)."""
    k = min(text_shift.numel(), vision_shift.numel())
    if k == 0:
        return text_shift.new_zeros(())
    return ((text_shift[:k] - vision_shift[:k].to(text_shift.device)) ** 2).sum()


class GramReference(nn.Module):
    """The Gram norms ``g(P_l^(0))`` of the deep prompts at the first training step, per modality (``[k]`` buffers).

    Captured once, before the first optimisation step, and saved with the checkpoint so that a resumed run keeps
    dividing by the same constants (the released code recaptured them on every start).
    """

    def __init__(self, n_text: int, n_vision: int):
        super().__init__()
        self.register_buffer("text", torch.ones(n_text))
        self.register_buffer("vision", torch.ones(n_vision))
        self.register_buffer("captured", torch.tensor(False))

    @torch.no_grad()
    def capture(self, text_prompts: Sequence[torch.Tensor], vision_prompts: Sequence[torch.Tensor]) -> None:
        text, vision = gram_norms(text_prompts), gram_norms(vision_prompts)
        if text.shape != self.text.shape or vision.shape != self.vision.shape:
            raise ValueError(f"Expected {self.text.numel()} text and {self.vision.numel()} vision deep prompts, got "
                             f"{text.numel()} and {vision.numel()}.")
        if (text == 0).any() or (vision == 0).any():
            raise ValueError("A deep prompt is all zeros at the first step, so its relative Gram shift is undefined; "
                             "initialise the prompts randomly (the released N(0, 0.02)) or use SHIFT feature.")
        self.text.copy_(text)
        self.vision.copy_(vision)
        self.captured.fill_(True)


# ---- feature -------------------------------------------------------------------------------------------------
def shift_sums(hidden: torch.Tensor, reference: torch.Tensor,
               mask: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(||M (H - H0)||_F^2, ||M H0||_F^2)`` for ``hidden, reference [N, L, d]`` and a token ``mask [N, L]`` (bool).

    ``hidden`` may be longer than ``reference`` along ``L`` (appended vision prompt tokens): only the first ``L0``
    tokens are compared (and the first ``L0`` columns of ``mask``). ``reference`` carries no gradient. Sums over
    several batches give the shift over a whole split.
    """
    n_tokens = reference.shape[1]
    h = hidden[:, :n_tokens].float()
    h0 = reference.detach().float().to(h.device)
    diff = (h - h0).pow(2).sum(-1)  # [N, L0]
    base = h0.pow(2).sum(-1)
    if mask is not None:
        mask = mask[:, :n_tokens].to(h.device, torch.float32)
        diff, base = diff * mask, base * mask
    return diff.sum(), base.sum()


def relative_feature_shift(hidden: torch.Tensor, reference: torch.Tensor,
                           mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``delta = ||M (H - H0)||_F / ||M H0||_F`` (see :func:`shift_sums`), a scalar with gradient through ``H``."""
    num, den = shift_sums(hidden, reference, mask)
    return safe_sqrt(num) / den.sqrt().clamp_min(1e-12)


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(x)`` that is exactly 0 at ``x = 0`` with a zero (not NaN) gradient there."""
    return torch.where(x > 0, x.clamp_min(1e-30).sqrt(), torch.zeros_like(x))


def text_content_mask(eot_index: torch.Tensor, n_slots: int, length: int) -> torch.Tensor:
    """``[N, length]`` bool: SOT (position 0) and positions ``n_slots + 1 .. eot`` - the tokens of the text itself,
    without the ``n_slots`` learned slots after SOT and without the padding after EOT."""
    pos = torch.arange(length, device=eot_index.device).unsqueeze(0)  # [1, L]
    eot = eot_index.unsqueeze(1)  # [N, 1]
    return (pos == 0) | ((pos > n_slots) & (pos <= eot))


def per_layer_feature_shift(hidden: Sequence[torch.Tensor], reference: Sequence[Optional[torch.Tensor]],
                            layers: Sequence[int], mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``[delta_l for l in layers]`` from per-block outputs ``hidden[l]`` and ``reference[l]`` (``[len(layers)]``)."""
    if not layers:
        return torch.zeros(0)
    return torch.stack([relative_feature_shift(hidden[l], reference[l], mask) for l in layers])


class FrozenReference:
    """Block outputs of the frozen CLIP on the same inputs without any prompt: ``H_l(x; 0)``.

    Text: the class prompts' own token ids through the frozen token embedding and no deep prompts ("a photo of a
    {class}." for CTX_INIT "a photo of a"); computed once per class set and cached (never saved), cut after the
    longest EOT. Images: one extra pass without gradient per batch.
    """

    def __init__(self, backbone):
        self.backbone = backbone
        self._tokens: Optional[torch.Tensor] = None
        self._text: List[torch.Tensor] = []
        self._eot: Optional[torch.Tensor] = None

    @torch.no_grad()
    def text(self, tokens: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """``([H_l [C, L0, d_t] per block], eot_index [C])`` for token ids ``tokens [C, L]``."""
        if self._tokens is None or self._tokens.shape != tokens.shape or not torch.equal(self._tokens, tokens):
            bb = self.backbone
            eot = bb.eot_index(tokens)
            _, hidden = bb.encode_text_from_embeddings(bb.token_embedding(tokens), eot, return_hidden=True)
            length = int(eot.max()) + 1
            self._text = [h[:, :length].clone() for h in hidden]
            self._tokens, self._eot = tokens.clone(), eot
        return self._text, self._eot

    @torch.no_grad()
    def image(self, images: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """``(f_0 [B, D], [H_l [B, 1 + grid^2, d_v] per block])`` of the prompt-free image tower."""
        return self.backbone.encode_image(images, return_hidden=True)
