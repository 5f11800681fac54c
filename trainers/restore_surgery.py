"""RESTORE's surgery block: one feed-forward adapter per modality on the final projected feature, with ratios.

Released code (``Feature_Calibrator`` and ``CustomCLIP.update_calib`` in ``trainers/maple_fsa.py`` of
``Yaphabates/RESTORE_``; docs/RESTORE.md):

- adapter ``g(f) = f + FFN(LN(f))`` with ``FFN = Linear(d, 4d) -> QuickGELU -> Linear(4d, d)``: a pre-LayerNorm
  transformer feed-forward block (an expansion, not a bottleneck), PyTorch's default initialisation (not zero);
- blend ``f' = r * g(f) + (1 - r) * f = f + r * FFN(LN(f))``, in training and in evaluation, before the L2
  normalisation of the logits;
- ratios ``r_text``, ``r_vision`` start at per-dataset values and change ONCE, after epoch ``floor(E / 3)``
  (0-based): ``r_text += 0.02 * S_text``, ``r_vision += 0.005 * S_vision``, with ``S`` the mean over the deep layers
  of the absolute Gram norms ``||P_l^T P_l||_F`` (no gradient). They are never optimised.

Here the ratios are buffers, so they are saved with the adapters, restored on resume and used at evaluation; a flag
buffer records that the update happened, so a resumed run never applies it twice.
"""
from __future__ import annotations

import torch
import torch.nn as nn
from open_clip.transformer import QuickGELU


class FeedForwardAdapter(nn.Module):
    """``FFN(LN(f)) = W2 QuickGELU(W1 LN(f) + b1) + b2``: ``[..., d] -> [..., d]`` through ``expansion * d``."""

    def __init__(self, dim: int, expansion: int = 4):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, expansion * dim)
        self.act = QuickGELU()
        self.fc2 = nn.Linear(expansion * dim, dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(self.norm(features))))


class SurgeryBlock(nn.Module):
    """Adapters ``text`` and ``vision`` on ``d``-dim features and their blend ratios (buffers, never trained)."""

    def __init__(self, dim: int, text_ratio: float, vision_ratio: float, expansion: int = 4):
        super().__init__()
        self.text = FeedForwardAdapter(dim, expansion)
        self.vision = FeedForwardAdapter(dim, expansion)
        self.register_buffer("text_ratio", torch.tensor(float(text_ratio)))
        self.register_buffer("vision_ratio", torch.tensor(float(vision_ratio)))
        self.register_buffer("ratios_updated", torch.tensor(False))

    @staticmethod
    def _blend(features: torch.Tensor, adapter: FeedForwardAdapter, ratio: torch.Tensor) -> torch.Tensor:
        """In the adapter's dtype: fp32, or fp16 under the official fp16 reading (``Feature_Calibrator().half()``),
        where the released ``CustomCLIP.forward`` computes ``r * (f + FFN(LN(f))) + (1 - r) * f`` with ``r`` a
        Python float."""
        f = features.to(adapter.fc1.weight.dtype)
        if f.dtype == torch.float32:
            return f + ratio.to(f.dtype) * adapter(f)
        r = float(ratio)
        return r * (f + adapter(f)) + (1 - r) * f

    def calibrate_text(self, features: torch.Tensor) -> torch.Tensor:
        """``f + r_text * FFN_text(LN(f))`` for text features ``[C, D]`` (or ``[B, C, D]``), in the adapter's dtype."""
        return self._blend(features, self.text, self.text_ratio)

    def calibrate_vision(self, features: torch.Tensor) -> torch.Tensor:
        """``f + r_vision * FFN_vision(LN(f))`` for image features ``[B, D]``, in the adapter's dtype."""
        return self._blend(features, self.vision, self.vision_ratio)

    @torch.no_grad()
    def update_ratios(self, text_shift: float, vision_shift: float, text_coef: float, vision_coef: float) -> bool:
        """``r_text += text_coef * text_shift``, ``r_vision += vision_coef * vision_shift``, once; returns whether
        this call changed them."""
        if bool(self.ratios_updated):
            return False
        self.text_ratio.add_(text_coef * float(text_shift))
        self.vision_ratio.add_(vision_coef * float(vision_shift))
        self.ratios_updated.fill_(True)
        return True
