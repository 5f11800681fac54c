"""LAMM's hierarchical loss terms (feature and logit space; the parameter-space term is
``LabelTable.consolidation_loss``).

Notation (gaojingsheng/LAMM ``CustomCLIP.forward``; docs/LAMM.md): ``t [C, D]`` text features built with the learned
label tokens, ``t0 [C, D]`` text features of the original class-name prompt, ``z = s * norm(f_img) @ norm(t).T`` and
``z0 = s * norm(f_img) @ norm(t0).T``, both ``[B, C]``; ``y [B]`` the labels.

Each function has two modes: ``released`` reproduces gaojingsheng/LAMM exactly (``FeatureLoss`` and
``helpers.distillation``), ``standard`` is the textbook reading of the paper's description.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_MODES = ("released", "standard")


def feature_cosine_loss(t: torch.Tensor, t0: torch.Tensor, labels: torch.Tensor, mode: str = "released"):
    """``L_COS = mean_i (1 - cos(t_{y_i}, sg(t0_{y_i})))``, one term per sample (classes weighted by frequency).

    ``released``: the whole loss is 0 when every label in the batch is the same (``FeatureLoss`` skips each
    sample whose batch holds a single class, and returns 0 when no term was counted; so with batch size 1 it is
    always 0). ``standard``: the mean over the batch, always.
    """
    if mode not in LOSS_MODES:
        raise ValueError(f'TRAINER.LAMM.COS_MODE is "{mode}"; choose one of {LOSS_MODES}.')
    if mode == "released" and bool((labels == labels[0]).all()):
        return t.new_zeros(())
    cos = F.cosine_similarity(t[labels].float(), t0[labels].detach().float(), dim=-1)
    return (1.0 - cos).mean()


def logit_distillation(z: torch.Tensor, z0: torch.Tensor, temperature: float = 2.0, mode: str = "released"):
    """The logit-space term ``L_KD`` at temperature ``T``.

    ``released`` (``helpers.distillation(t=z, s=z0, T)``): ``T^2 * CE(input=z0/T, target=softmax(z/T))``
    ``= -T^2 * mean_b sum_c softmax(z/T)_bc * log_softmax(z0/T)_bc``, with neither side detached: the soft target
    is the trained model's distribution and the "input" the original-prompt one (the reverse of textbook KD).
    ``standard``: ``T^2 * mean_b KL(softmax(z0/T) || softmax(z/T))`` with ``z0`` detached (the teacher).
    """
    if mode not in LOSS_MODES:
        raise ValueError(f'TRAINER.LAMM.KD_MODE is "{mode}"; choose one of {LOSS_MODES}.')
    T = float(temperature)
    if mode == "released":
        target = F.softmax(z.float() / T, dim=-1)
        return -(target * F.log_softmax(z0.float() / T, dim=-1)).sum(-1).mean() * T * T
    teacher = F.softmax(z0.detach().float() / T, dim=-1)
    return F.kl_div(F.log_softmax(z.float() / T, dim=-1), teacher, reduction="batchmean") * T * T
