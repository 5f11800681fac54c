"""Precision policy (``TRAINER.<NAME>.PREC``, ``TRAINER.<NAME>.MASTER_WEIGHTS``, ``MODEL.HALF_ON_CPU``).

- ``fp16`` with ``MASTER_WEIGHTS fp16`` (default): the official code's arithmetic (CoOp/CoCoOp
  ``trainers/coop.py``/``cocoop.py``, MaPLe ``trainers/maple.py``, ...). The frozen CLIP is fp16 (``convert_weights``),
  the trainable tensors that the official code creates in ``clip_model.dtype`` or casts with ``.half()`` are fp16
  parameters, the others stay fp32 (each trainer lists them in ``OFFICIAL_FP32_PARAMS``) and are cast where they
  enter the backbone; the head normalises and multiplies in fp16, so logits and cross-entropy are fp16; Dassl's SGD
  steps the fp16 parameters in place with an fp16 momentum buffer: no master copy, no loss scaling.
- ``fp16`` with ``MASTER_WEIGHTS fp32``: the frozen CLIP in fp16, every trainable tensor an fp32 master weight cast
  where it enters the backbone, the head in fp32. Better numerics; recommended for new work.
- ``bf16``: as ``fp16`` with ``MASTER_WEIGHTS fp32``, in bfloat16 (``MASTER_WEIGHTS`` is not read).
- ``amp``: fp32 weights under ``torch.autocast`` (fp16) with a gradient scaler.
- ``fp32``: everything fp32.

On CPU every mode runs in fp32 and the log says so, unless ``MODEL.HALF_ON_CPU True``: then ``fp16`` and ``bf16``
run in half precision on CPU too (slow, but the same arithmetic; the fp16 golden tests use it). ``amp`` stays fp32
on CPU.
"""
from __future__ import annotations

import contextlib
import logging
from typing import Sequence

import torch
import torch.nn as nn

logger = logging.getLogger(__name__)

PRECISIONS = ("fp16", "bf16", "fp32", "amp")
MASTER_WEIGHTS = ("fp16", "fp32")  # fp16: the official arithmetic (no master copy); fp32: fp32 master weights
HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}


def check_precision(node_key: str, prec: str, master_weights: str) -> None:
    """One clear message for an unknown ``PREC`` or ``MASTER_WEIGHTS`` (``node_key`` e.g. ``TRAINER.COOP``)."""
    if prec not in PRECISIONS:
        raise ValueError(f'{node_key}.PREC is "{prec}"; choose one of {", ".join(PRECISIONS)}.')
    if master_weights not in MASTER_WEIGHTS:
        raise ValueError(f'{node_key}.MASTER_WEIGHTS is "{master_weights}"; choose fp16 (the official fp16 '
                         "arithmetic, no master copy) or fp32 (fp32 master weights, recommended for new work).")


class Precision:
    """Where the frozen CLIP, the trainable tensors and the head compute.

    ``backbone_dtype``: the frozen CLIP's weights; ``official_fp16``: ``PREC fp16`` with ``MASTER_WEIGHTS fp16`` in
    effect; ``head_dtype``: the dtype of the normalised features, the logits and the loss (fp16 in the official
    reading, else fp32).
    """

    def __init__(self, prec: str, device: torch.device, master_weights: str = "fp16", half_on_cpu: bool = False):
        check_precision("TRAINER.<NAME>", prec, master_weights)
        self.requested = prec
        if device.type != "cuda" and prec != "fp32" and not (half_on_cpu and prec in HALF):
            hint = " (MODEL.HALF_ON_CPU True runs fp16/bf16 on CPU)" if prec in HALF else ""
            logger.info("PREC %s requested on %s: running in fp32%s.", prec, device.type, hint)
            prec = "fp32"
        self.prec = prec
        self.device = device
        self.master_weights = master_weights
        self.official_fp16 = prec == "fp16" and master_weights == "fp16"
        self.backbone_dtype = HALF.get(prec, torch.float32)
        self.head_dtype = torch.float16 if self.official_fp16 else torch.float32
        self.scaler = torch.amp.GradScaler(device.type) if prec == "amp" else None
        if prec in HALF:
            logger.info("PREC %s: %s", prec, "official fp16 arithmetic (trainable tensors in CLIP's dtype as in the "
                        "official code, fp16 SGD state, no master copy)" if self.official_fp16 else
                        "fp32 master weights cast where they enter the backbone")

    def prepare_backbone(self, backbone: nn.Module) -> nn.Module:
        return backbone.to(device=self.device, dtype=self.backbone_dtype)

    def prepare_learner(self, module: nn.Module, fp32_params: Sequence[str] = (), buffers: bool = True) -> nn.Module:
        """The trainable module on the device in its parameters' dtype.

        Official fp16: every parameter (and, with ``buffers``, every floating buffer) in fp16 except those whose name
        starts with one of ``fp32_params`` (what the official code leaves fp32 under ``PREC fp16``); otherwise fp32
        throughout.
        """
        module = module.float().to(self.device)
        if not self.official_fp16:
            return module
        keep = tuple(fp32_params)
        with torch.no_grad():
            for name, p in module.named_parameters():
                if not name.startswith(keep):
                    p.data = p.data.half()
            for prefix, sub in module.named_modules() if buffers else ():
                for key, b in sub._buffers.items():
                    name = f"{prefix}.{key}" if prefix else key
                    if b is not None and b.is_floating_point() and not name.startswith(keep):
                        sub._buffers[key] = b.half()
        return module

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the head's dtype (features before normalisation, text features of an evaluation cache)."""
        return x.to(self.head_dtype)

    def autocast(self):
        if self.prec == "amp":
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        return contextlib.nullcontext()
