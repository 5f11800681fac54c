"""Per-epoch learning-rate schedules that reproduce Dassl's traces exactly, in closed form.

Dassl wraps ``CosineAnnealingLR(T_max=MAX_EPOCH)`` / ``StepLR`` / ``MultiStepLR`` in a warm-up scheduler whose
``state_dict`` pickles the wrapped scheduler object, which ``torch.load(weights_only=True)`` refuses, and whose
constructor breaks on torch >= 2.7 (``dassl/optim/lr_scheduler.py``; docs/OFFICIAL_CODE.md). Here the LR of epoch
``e`` is a pure function:

- warm-up (``e < W``): ``constant`` -> ``WARMUP_CONS_LR``; ``linear`` -> ``WARMUP_MIN_LR`` at e = 0, else
  ``base_lr * e / W``;
- afterwards the successor at step ``t = e - W`` (``WARMUP_RECOUNT``, the default) or ``t = e``:
  ``cosine`` -> ``base_lr * (1 + cos(pi * t / MAX_EPOCH)) / 2``; ``single_step`` -> ``base_lr * GAMMA ** (t // S)``
  (S <= 0 means MAX_EPOCH); ``multi_step`` -> ``base_lr * GAMMA ** #{m in STEPSIZE : m <= t}``.

For 10 epochs, LR 0.002 and one constant warm-up epoch at 1e-5 this gives Dassl's trace
1e-5, 0.002, 0.00195, 0.00181, 0.00159, 0.00131, 0.001, 0.00069, 0.00041, 0.00019.
The state is plain numbers, so checkpoints load with ``weights_only=True``.
"""
from __future__ import annotations

import math
from typing import List

from torch.optim.lr_scheduler import LRScheduler

AVAILABLE_LR_SCHEDULERS = ("single_step", "multi_step", "cosine")


class EpochScheduler(LRScheduler):
    """A Dassl-equivalent schedule: stepped once per epoch; ``last_epoch`` is the current epoch index."""

    def __init__(self, optimizer, name: str, max_epoch: int, stepsize=(-1,), gamma: float = 0.1,
                 warmup_epoch: int = 0, warmup_type: str = "linear", warmup_cons_lr: float = 1e-5,
                 warmup_min_lr: float = 1e-5, warmup_recount: bool = True):
        if name not in AVAILABLE_LR_SCHEDULERS:
            raise ValueError(f'Unknown OPTIM.LR_SCHEDULER "{name}"; choose one of {", ".join(AVAILABLE_LR_SCHEDULERS)}.')
        if warmup_epoch > 0 and warmup_type not in ("constant", "linear"):
            raise ValueError(f'Unknown OPTIM.WARMUP_TYPE "{warmup_type}"; choose constant or linear.')
        self.name = name
        self.max_epoch = int(max_epoch)
        self.stepsize = [int(s) for s in (stepsize if isinstance(stepsize, (list, tuple)) else [stepsize])]
        self.gamma = float(gamma)
        self.warmup_epoch = max(int(warmup_epoch), 0)
        self.warmup_type = warmup_type
        self.warmup_cons_lr = float(warmup_cons_lr)
        self.warmup_min_lr = float(warmup_min_lr)
        self.warmup_recount = bool(warmup_recount)
        super().__init__(optimizer)

    def lr_at(self, base_lr: float, epoch: int) -> float:
        W = self.warmup_epoch
        if epoch < W:
            if self.warmup_type == "constant":
                return self.warmup_cons_lr
            return self.warmup_min_lr if epoch == 0 else base_lr * epoch / W
        t = epoch - W if self.warmup_recount else epoch
        if self.name == "cosine":
            return base_lr * (1 + math.cos(math.pi * t / self.max_epoch)) / 2
        if self.name == "single_step":
            step = self.stepsize[0] if self.stepsize[0] > 0 else self.max_epoch
            return base_lr * self.gamma ** (t // step)
        return base_lr * self.gamma ** sum(1 for m in self.stepsize if m <= t)

    def get_lr(self) -> List[float]:
        return [self.lr_at(base, self.last_epoch) for base in self.base_lrs]

    def fast_forward(self, epoch: int) -> None:
        """Put the schedule at the start of epoch index ``epoch`` (as after ``epoch`` steps) and set the optimiser's
        LRs to it; used when a run resumes under a changed config, so the new schedule applies from there on."""
        self.last_epoch = int(epoch)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def build_lr_scheduler(optimizer, optim_cfg) -> EpochScheduler:
    """Dassl's ``build_lr_scheduler(optimizer, optim_cfg)``."""
    return EpochScheduler(
        optimizer, optim_cfg.LR_SCHEDULER, optim_cfg.MAX_EPOCH, optim_cfg.STEPSIZE, optim_cfg.GAMMA,
        optim_cfg.WARMUP_EPOCH, optim_cfg.WARMUP_TYPE, optim_cfg.WARMUP_CONS_LR, optim_cfg.WARMUP_MIN_LR,
        optim_cfg.WARMUP_RECOUNT,
    )
