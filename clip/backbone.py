"""The frozen CLIP backbone with prompt hooks, composed over an unmodified open_clip ``CLIP``.

Prompt learners never edit CLIP; they hand the backbone what to splice in:

- text: token embeddings ``[N, L, d_t]`` with learned vectors already in place, the EOT positions ``[N]``, and
  optional deep prompts - a list indexed by layer; entry ``i >= 1`` (``[n, d_t]`` or ``[N, n, d_t]``) replaces the
  ``n`` slots after SOT (positions ``1..n``) at the input of block ``i``. ``None`` entries, and layers past the
  list, pass the previous block's outputs through (IVLP/MaPLe semantics: ``muzairkhattak/multimodal-prompt-learning``
  ``clip/model.py``, ``ResidualAttentionBlock_IVLP``; docs/OFFICIAL_CODE.md).
- vision (ViT only): ``prompts`` ``[n, d_v]`` or ``[B, n, d_v]`` are appended after CLS + patches, after the
  positional embedding and before ``ln_pre``; deep prompts replace those last ``n`` tokens at the input of block
  ``i >= 1``. The prompt tokens are dropped before pooling, so the output is the pooled CLS feature.

With no prompts both paths equal open_clip's ``encode_text`` / ``encode_image`` (tests/test_clip_backbone.py): the
image path and the full-length text pass bit for bit, the default text pass (cut after the longest EOT) up to fp32
rounding.
The backbone owns no trainable parameter and stays in eval mode; inputs are cast to its dtype, so fp32 prompt
parameters receive gradients through the cast while the frozen weights may be fp16/bf16 on a GPU.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer

from .tokenizer import tokenize as _tokenize

DeepPrompts = Optional[Sequence[Optional[torch.Tensor]]]


class BackboneError(ValueError):
    pass


def _as_batch(p: torch.Tensor, n: int) -> torch.Tensor:
    """``[k, d]`` -> ``[n, k, d]``; ``[n, k, d]`` unchanged."""
    return p.unsqueeze(0).expand(n, -1, -1) if p.dim() == 2 else p


class CLIPBackbone(nn.Module):
    def __init__(self, model: nn.Module, name: str = ""):
        super().__init__()
        self.model = model
        self.name = name
        model.requires_grad_(False)
        self.train(False)

    # ---- facts about the model ----------------------------------------------------------------------------
    @property
    def is_vit(self) -> bool:
        return isinstance(self.model.visual, VisionTransformer)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.token_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.token_embedding.weight.device

    @property
    def text_width(self) -> int:
        return self.model.transformer.width

    @property
    def text_layers(self) -> int:
        return len(self.model.transformer.resblocks)

    @property
    def vision_width(self) -> Optional[int]:
        return self.model.visual.transformer.width if self.is_vit else None

    @property
    def vision_layers(self) -> int:
        return len(self.model.visual.transformer.resblocks) if self.is_vit else 0

    @property
    def embed_dim(self) -> int:
        return self.model.visual.output_dim

    @property
    def context_length(self) -> int:
        return self.model.context_length

    @property
    def image_size(self) -> int:
        size = getattr(self.model.visual, "image_size", 224)
        return size[0] if isinstance(size, (tuple, list)) else int(size)

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's frozen temperature, ``exp(logit_scale)`` (about 100 for OpenAI's models), as fp32."""
        return self.model.logit_scale.detach().float().exp()

    def require_vit(self, who: str) -> None:
        if not self.is_vit:
            raise BackboneError(f"{who} needs a ViT backbone (it prompts the vision transformer); "
                                f'"{self.name}" is a ResNet. Use ViT-B/16, ViT-B/32 or ViT-L/14.')

    def train(self, mode: bool = True):
        """The backbone is frozen: it stays in eval mode whatever the caller asks."""
        return super().train(False)

    # ---- text ---------------------------------------------------------------------------------------------
    def tokenize(self, texts: Union[str, Sequence[str]]) -> torch.Tensor:
        return _tokenize(texts, context_length=self.context_length).to(self.device)

    def token_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[N, L]`` ids -> ``[N, L, d_t]`` embeddings."""
        return self.model.token_embedding(tokens)

    def eot_index(self, tokens: torch.Tensor) -> torch.Tensor:
        """Position of the token whose feature is pooled (EOT = the highest id for CLIP's BPE), ``[N]``."""
        pool = getattr(self.model, "text_pool_type", "argmax")
        if pool == "argmax":
            return tokens.argmax(dim=-1)
        if pool == "last":
            return torch.full((tokens.shape[0],), tokens.shape[1] - 1, device=tokens.device, dtype=torch.long)
        if pool == "eos":
            return (tokens == self.model.text_eos_id).int().argmax(dim=-1)
        return torch.zeros(tokens.shape[0], device=tokens.device, dtype=torch.long)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Plain text features ``[N, D]`` of token ids ``[N, L]``."""
        return self.encode_text_from_embeddings(self.token_embedding(tokens), self.eot_index(tokens))

    def encode_text_from_embeddings(self, x: torch.Tensor, eot_index: torch.Tensor, deep_prompts: DeepPrompts = None,
                                    return_hidden: bool = False):
        """Text features ``[N, D]`` from token embeddings ``[N, L, d_t]`` (positional embedding added here).

        ``return_hidden`` also returns each block's output ``[N, L, d_t]`` (a list of ``text_layers`` tensors).

        Without ``return_hidden``, a causal text tower runs only the first ``max(eot_index) + 1`` positions: under
        the causal mask no position attends to a later one, so the pooled feature does not depend on the padding
        after the longest EOT. The result equals the full-length pass up to fp32 rounding of the shorter matmuls
        (tests/test_clip_backbone.py), and a prompt of 10 tokens in CLIP's 77-token context costs about a seventh.
        """
        m = self.model
        x = x.to(self.dtype)
        mask = m.attn_mask
        if not return_hidden and mask is not None:
            n = int(eot_index.max()) + 1
            x, mask = x[:, :n], mask[:n, :n]
        x = x + m.positional_embedding[:x.shape[1]].to(self.dtype)
        x, hidden = self._run_blocks(m.transformer, x, deep_prompts, slots="after_sot", attn_mask=mask)
        x = m.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot_index]
        proj = m.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return (x, hidden) if return_hidden else x

    # ---- image --------------------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor, prompts: Optional[torch.Tensor] = None,
                     deep_prompts: DeepPrompts = None, return_hidden: bool = False):
        """Image features ``[B, D]`` of images ``[B, 3, H, W]``, with optional appended (deep) vision prompts."""
        images = images.to(self.dtype)
        if not self.is_vit:
            if prompts is not None or deep_prompts:
                self.require_vit("Vision prompting")
            out = self.model.visual(images)
            return (out, []) if return_hidden else out
        v = self.model.visual
        x = v.conv1(images)  # [B, width, grid, grid]
        x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [B, grid**2, width]
        cls = v.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        x = v.patch_dropout(x)
        n_prompt = 0
        if prompts is not None:
            prompts = _as_batch(prompts.to(x.dtype), x.shape[0])
            n_prompt = prompts.shape[1]
            x = torch.cat([x, prompts], dim=1)
        x = v.ln_pre(x)
        if deep_prompts and n_prompt == 0:
            raise BackboneError("Deep vision prompts need first-layer prompts appended (pass `prompts`).")
        x, hidden = self._run_blocks(v.transformer, x, deep_prompts, slots="last")
        if n_prompt:
            x = x[:, :-n_prompt]
        pooled, _ = v._pool(x)
        if v.proj is not None:
            pooled = pooled @ v.proj
        return (pooled, hidden) if return_hidden else pooled

    # ---- the block loop with prompt slots --------------------------------------------------------------------
    def _run_blocks(self, transformer: nn.Module, x: torch.Tensor, deep_prompts: DeepPrompts, slots: str,
                    attn_mask: Optional[torch.Tensor] = None):
        """Run blocks one at a time (``x``: ``[N, L, d]``), replacing prompt slots before blocks ``i >= 1``."""
        hidden: List[torch.Tensor] = []
        batch_first = getattr(transformer, "batch_first", True)
        deep = list(deep_prompts) if deep_prompts else []
        for i, block in enumerate(transformer.resblocks):
            p = deep[i] if 0 < i < len(deep) else None
            if p is not None:
                p = _as_batch(p.to(x.dtype), x.shape[0])
                n = p.shape[1]
                if slots == "after_sot":
                    x = torch.cat([x[:, :1], p, x[:, 1 + n:]], dim=1)
                else:
                    x = torch.cat([x[:, :-n], p], dim=1)
            if batch_first:
                x = block(x, attn_mask=attn_mask)
            else:
                x = block(x.transpose(0, 1), attn_mask=attn_mask).transpose(0, 1)
            hidden.append(x)
        return x, hidden


def normalize(x: torch.Tensor) -> torch.Tensor:
    """L2-normalise features along the last dimension, in fp32."""
    return F.normalize(x.float(), dim=-1)
