"""OpenAI-``clip``-compatible names, so trainers written for CoOp's vendored CLIP port by changing imports only.

CoOp-family trainer files do ``from clip import clip`` and then use ``clip._MODELS``, ``clip._download``,
``clip.build_model(state_dict)``, ``clip.tokenize`` and the model's OpenAI attribute names, feeding
``clip_model.transformer`` sequence-first (``[L, N, d]``) input. This module provides exactly that surface over
open_clip: :func:`build_model` returns an :class:`OpenAICLIP` view of an open_clip ``CLIP`` whose ``transformer``
takes and returns ``[L, N, d]`` and applies the causal mask itself, as OpenAI's did. New code should use
:func:`clip.load` and :class:`clip.CLIPBackbone` instead.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn as nn
from open_clip.model import build_model_from_openai_state_dict
from open_clip.pretrained import download_pretrained_from_url, get_pretrained_cfg

from .loading import OPENAI_MODELS, default_cache_dir
from .tokenizer import tokenize

__all__ = ["available_models", "build_model", "load", "tokenize", "_MODELS", "_download", "OpenAICLIP"]

# OpenAI's release URLs as open_clip records them (the second-to-last path component is the file's SHA-256).
_MODELS = {name: get_pretrained_cfg(arch, "openai")["url"] for name, (arch, _) in OPENAI_MODELS.items()}


def available_models():
    return list(_MODELS)


def _download(url: str, root: Optional[str] = None) -> str:
    """Path of the release file ``url`` in the cache (``~/.cache/clip`` by default), downloading it (with
    open_clip's SHA-256 check) if it is not there."""
    root = default_cache_dir(root)
    target = os.path.join(root, os.path.basename(url))
    if os.path.isfile(target):
        return target
    os.makedirs(root, exist_ok=True)
    try:
        return download_pretrained_from_url(url, cache_dir=root)
    except Exception as e:  # noqa: BLE001 - turned into an actionable message
        raise FileNotFoundError(
            f"Could not download {url} ({type(e).__name__}: {e}). Put the file at {target} (OpenAI's clip "
            "package caches it there) or set $CLIP_CACHE_DIR to the folder that holds it.") from None


class _SequenceFirstTransformer(nn.Module):
    """OpenAI's ``Transformer`` calling convention: ``[L, N, d] -> [L, N, d]``, causal mask applied inside."""

    def __init__(self, transformer: nn.Module, attn_mask: Optional[torch.Tensor]):
        super().__init__()
        self.inner = transformer
        self.register_buffer("attn_mask", attn_mask, persistent=False)
        self.width = transformer.width
        self.layers = transformer.layers
        self.resblocks = transformer.resblocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x.transpose(0, 1), attn_mask=self.attn_mask).transpose(0, 1)


class OpenAICLIP(nn.Module):
    """An open_clip ``CLIP`` under OpenAI's attribute names (``visual``, ``transformer``, ``token_embedding``,
    ``positional_embedding``, ``ln_final``, ``text_projection``, ``logit_scale``, ``dtype``)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.visual = model.visual
        self.token_embedding = model.token_embedding
        self.positional_embedding = model.positional_embedding
        self.ln_final = model.ln_final
        self.text_projection = model.text_projection
        self.logit_scale = model.logit_scale
        self.transformer = _SequenceFirstTransformer(model.transformer, model.attn_mask)
        self.context_length = model.context_length

    @property
    def dtype(self) -> torch.dtype:
        return self.token_embedding.weight.dtype

    def encode_image(self, image):
        return self.model.encode_image(image.type(self.dtype))

    def encode_text(self, text):
        return self.model.encode_text(text)

    def forward(self, image, text):
        img = self.encode_image(image)
        txt = self.encode_text(text)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        logits = self.logit_scale.exp() * img @ txt.t()
        return logits, logits.t()


def build_model(state_dict: dict) -> OpenAICLIP:
    """OpenAI's ``build_model``: architecture inferred from the state dict, weights in fp16, eval mode."""
    model = build_model_from_openai_state_dict(state_dict, cast_dtype=torch.float16)
    return OpenAICLIP(model).eval()


def load(name: str, device="cpu", jit: bool = False, download_root: Optional[str] = None):
    """OpenAI's ``clip.load`` (non-JIT): ``(model, preprocess)``; the model is fp32 on CPU, fp16 on GPU."""
    from open_clip.transform import image_transform

    path = _download(_MODELS[name], download_root) if name in _MODELS else name
    try:
        state_dict = torch.jit.load(path, map_location="cpu").eval().state_dict()
    except RuntimeError:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(state_dict).to(device)
    if str(device) == "cpu":
        model.float()
    size = model.visual.image_size
    return model, image_transform(size[0] if isinstance(size, tuple) else size, is_train=False)
