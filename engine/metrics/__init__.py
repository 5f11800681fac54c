"""Training metrics (Dassl's ``dassl.metrics``)."""
import torch


def compute_accuracy(output: torch.Tensor, target: torch.Tensor, topk=(1,)):
    """Top-k accuracies in percent for logits ``[B, C]`` and labels ``[B]``; a list of 0-dim tensors."""
    maxk = max(topk)
    _, pred = output.topk(maxk, 1, True, True)
    correct = pred.t().eq(target.view(1, -1).expand_as(pred.t()))
    return [correct[:k].reshape(-1).float().sum(0) * (100.0 / target.size(0)) for k in topk]


__all__ = ["compute_accuracy"]
