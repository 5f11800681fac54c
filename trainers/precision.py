"""Precision policy (``TRAINER.<NAME>.PREC``): where the frozen CLIP computes and how gradients are scaled.

- ``fp32``: everything fp32.
- ``fp16`` / ``bf16``: the frozen CLIP's weights in half precision (the published runs used fp16 CLIP); prompts
  and every trainable parameter stay fp32 (master weights), and are cast where they enter the backbone.
- ``amp``: fp32 weights under ``torch.autocast`` (fp16) with a gradient scaler.

On CPU every mode runs in fp32 (half-precision kernels are missing or slow there), and the log says so.
"""
from __future__ import annotations

import contextlib
import logging

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("fp16", "bf16", "fp32", "amp")


class Precision:
    def __init__(self, prec: str, device: torch.device):
        if prec not in PRECISIONS:
            raise ValueError(f'Unknown PREC "{prec}"; choose one of {", ".join(PRECISIONS)}.')
        self.requested = prec
        if device.type != "cuda" and prec != "fp32":
            logger.info("PREC %s requested on %s: running in fp32.", prec, device.type)
            prec = "fp32"
        self.prec = prec
        self.device = device
        self.backbone_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(prec, torch.float32)
        self.scaler = torch.amp.GradScaler(device.type) if prec == "amp" else None

    def prepare_backbone(self, backbone: torch.nn.Module) -> torch.nn.Module:
        return backbone.to(device=self.device, dtype=self.backbone_dtype)

    def autocast(self):
        if self.prec == "amp":
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()
