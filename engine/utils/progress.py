"""Dassl's training progress line (``dassl/engine/trainer.py``, ``TrainerX.run_epoch``).

    epoch [1/50] batch [5/5] time 0.123 (0.131) data 0.010 (0.012) loss 1.2345 (1.3456) acc 50.0000 (45.0000)
        lr 2.0000e-03 eta 0:00:32     (one line)

``time`` and ``data`` are the last batch's wall time and data-loading time with their running averages (seconds);
the ETA is the average batch time times the batches left in this epoch and the epochs after it. A line is printed
every ``TRAIN.PRINT_FREQ`` batches, or after every batch when an epoch has fewer batches than that (Dassl's rule).
"""
from __future__ import annotations

import datetime

from .meters import AverageMeter, MetricMeter


def should_print(batch_idx: int, num_batches: int, print_freq: int) -> bool:
    """Dassl's condition: ``(batch_idx + 1) % PRINT_FREQ == 0`` or fewer batches than ``PRINT_FREQ``."""
    return (batch_idx + 1) % print_freq == 0 or num_batches < print_freq


def eta_seconds(avg_batch_time: float, batch_idx: int, num_batches: int, epoch: int, max_epoch: int) -> float:
    """``avg_batch_time * ((num_batches - batch_idx - 1) + (max_epoch - epoch - 1) * num_batches)``."""
    remaining = (num_batches - batch_idx - 1) + (max_epoch - epoch - 1) * num_batches
    return avg_batch_time * remaining


def progress_line(epoch: int, max_epoch: int, batch_idx: int, num_batches: int, batch_time: AverageMeter,
                  data_time: AverageMeter, losses: MetricMeter, lr: float) -> str:
    """One log line in Dassl's format (``epoch`` and ``batch_idx`` are 0-based, as in the trainer)."""
    eta = datetime.timedelta(seconds=int(eta_seconds(batch_time.avg, batch_idx, num_batches, epoch, max_epoch)))
    return " ".join([
        f"epoch [{epoch + 1}/{max_epoch}]",
        f"batch [{batch_idx + 1}/{num_batches}]",
        f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
        f"data {data_time.val:.3f} ({data_time.avg:.3f})",
        f"{losses}",
        f"lr {lr:.4e}",
        f"eta {eta}",
    ])
