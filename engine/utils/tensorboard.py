"""TensorBoard event files where and as Dassl writes them.

Dassl (KaiyangZhou/Dassl.pytorch, ``dassl/engine/trainer.py``): ``SimpleTrainer.before_train`` opens
``SummaryWriter(log_dir=<OUTPUT_DIR>/tensorboard)``; ``TrainerX.run_epoch`` writes ``train/<loss name>`` (the
epoch's running average) and ``train/lr`` after every batch at step ``epoch * num_batches + batch_idx``;
``SimpleTrainer.test`` writes ``<split>/<metric>`` at step ``epoch``; ``after_train`` closes the writer. Nothing is
written for ``--eval-only``.

The events are a side output: nothing reads them back. The ``tensorboard`` package is optional: without it, one
warning per process and no events.
"""
from __future__ import annotations

import logging
from typing import Optional

logger = logging.getLogger(__name__)

TENSORBOARD_DIR = "tensorboard"
_warned = False


def open_writer(log_dir: str, purge_step: Optional[int] = None):
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir``, or ``None`` when ``tensorboard`` is missing.

    ``purge_step``: a resumed run's first step; TensorBoard hides the events of steps ``>= purge_step`` that the
    interrupted run wrote (``SummaryWriter``'s documented ``purge_step``), so the curves show the steps once.
    """
    global _warned
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:
        if not _warned:
            _warned = True
            logger.warning("No TensorBoard event files (%s); install it with: pip install tensorboard", e)
        return None
    return SummaryWriter(log_dir=log_dir, purge_step=purge_step)
