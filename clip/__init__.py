"""This project's CLIP layer: a thin composition over ``open_clip_torch`` (nothing vendored or rewritten).

    backbone = clip.load("ViT-B/16")            # frozen CLIPBackbone, fp32, CPU
    tokens = clip.tokenize(["a photo of a dog."])
"""
from __future__ import annotations

from typing import Optional

from .backbone import BackboneError, CLIPBackbone, normalize
from .loading import OPENAI_MODELS, WeightsNotFoundError, available_models, default_cache_dir, load_model
from .tokenizer import encode, tokenize


def load(name: str, cache_dir: Optional[str] = None) -> CLIPBackbone:
    """A frozen :class:`CLIPBackbone` for ``name`` (see :mod:`clip.loading` for accepted names)."""
    return CLIPBackbone(load_model(name, cache_dir), name=name)


__all__ = ["load", "tokenize", "encode", "CLIPBackbone", "BackboneError", "WeightsNotFoundError",
           "available_models", "default_cache_dir", "normalize", "OPENAI_MODELS"]
