"""Utilities with Dassl's names (``dassl.utils``)."""
import os

from .checkpoint import (CheckpointError, CorruptCheckpointError, UnsafeCheckpointError, atomic_torch_save, atomic_write_bytes,
                         atomic_write_text, checkpoint_epochs,
                         latest_checkpoint, load_checkpoint, load_pretrained_weights, prune_checkpoints,
                         save_checkpoint)
from .env import collect_env_info, git_commit, versions
from .logger import setup_logger
from .meters import AverageMeter, MetricMeter
from .seed import get_rng_state, set_random_seed, set_rng_state


def mkdir_if_missing(dirname: str) -> None:
    os.makedirs(dirname, exist_ok=True)


__all__ = ["CheckpointError", "CorruptCheckpointError", "UnsafeCheckpointError", "atomic_torch_save", "atomic_write_bytes", "atomic_write_text", "checkpoint_epochs", "latest_checkpoint",
           "load_checkpoint", "load_pretrained_weights", "prune_checkpoints", "save_checkpoint",
           "collect_env_info", "git_commit", "versions", "setup_logger", "AverageMeter", "MetricMeter",
           "get_rng_state", "set_random_seed", "set_rng_state", "mkdir_if_missing"]
