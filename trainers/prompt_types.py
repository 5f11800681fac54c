"""What prompt modules hand to the backbone (see ``clip.backbone``)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch


@dataclass
class TextPrompts:
    """Prompted text input: ``embeddings [N, L, d_t]``, pooled positions ``eot_index [N]``, and optional per-layer
    ``deep`` prompts (entry ``i >= 1``: ``[n, d_t]``, replacing the slots after SOT at block ``i``)."""

    embeddings: torch.Tensor
    eot_index: torch.Tensor
    deep: Optional[List[Optional[torch.Tensor]]] = None


@dataclass
class VisionPrompts:
    """Prompted vision input: ``prompts [n, d_v]`` appended after CLS + patches, and optional per-layer ``deep``."""

    prompts: Optional[torch.Tensor] = None
    deep: Optional[List[Optional[torch.Tensor]]] = None
