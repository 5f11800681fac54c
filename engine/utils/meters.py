"""Running averages (Dassl's ``AverageMeter`` / ``MetricMeter``)."""
from collections import defaultdict

import torch


class AverageMeter:
    def __init__(self):
        self.reset()

    def reset(self):
        self.val = self.sum = self.avg = 0.0
        self.count = 0

    def update(self, val, n: int = 1):
        if isinstance(val, torch.Tensor):
            val = val.item()
        self.val = val
        self.sum += val * n
        self.count += n
        self.avg = self.sum / self.count


class MetricMeter:
    """Averages every key of the dicts returned by ``forward_backward``."""

    def __init__(self, delimiter: str = " "):
        self.meters = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict: dict) -> None:
        if input_dict is None:
            return
        if not isinstance(input_dict, dict):
            raise TypeError("forward_backward must return a dict of floats, e.g. {'loss': 0.7, 'acc': 50.0}.")
        for k, v in input_dict.items():
            self.meters[k].update(v)

    def averages(self) -> dict:
        return {k: m.avg for k, m in self.meters.items()}

    def __str__(self):
        return self.delimiter.join(f"{k} {m.val:.4f} ({m.avg:.4f})" for k, m in self.meters.items())
