"""Optimiser construction (Dassl's ``build_optimizer``)."""
from __future__ import annotations

from typing import Iterable, Union

import torch
import torch.nn as nn

AVAILABLE_OPTIMIZERS = ("sgd", "adam", "adamw", "amsgrad", "rmsprop")


def build_optimizer(model_or_params: Union[nn.Module, Iterable], optim_cfg, param_groups=None):
    """Build the optimiser named by ``optim_cfg.NAME`` over the trainable parameters.

    Given a module, only parameters with ``requires_grad`` are passed (Dassl passes all of them; frozen ones never
    receive a gradient, so the update is the same). ``param_groups`` (a list of dicts) overrides both.
    """
    name = optim_cfg.NAME.lower()
    if name not in AVAILABLE_OPTIMIZERS:
        raise ValueError(f'Unknown OPTIM.NAME "{optim_cfg.NAME}"; choose one of {", ".join(AVAILABLE_OPTIMIZERS)}.')
    if param_groups is not None:
        params = param_groups
    elif isinstance(model_or_params, nn.Module):
        params = [p for p in model_or_params.parameters() if p.requires_grad]
    else:
        params = list(model_or_params)
    if not params:
        raise ValueError("The optimiser was given no trainable parameters.")
    lr, wd = optim_cfg.LR, optim_cfg.WEIGHT_DECAY
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                               dampening=optim_cfg.SGD_DAMPNING, nesterov=optim_cfg.SGD_NESTEROV)
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, betas=betas, amsgrad=name == "amsgrad")
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, betas=betas)
    return torch.optim.RMSprop(params, lr=lr, momentum=optim_cfg.MOMENTUM, weight_decay=wd,
                               alpha=optim_cfg.RMSPROP_ALPHA)
