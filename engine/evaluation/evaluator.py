"""Classification evaluator (Dassl's ``Classification``), printing the lines existing log parsers read."""
from __future__ import annotations

import logging
import os
from collections import OrderedDict, defaultdict

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from engine.registry import EVALUATOR_REGISTRY

logger = logging.getLogger(__name__)


class EvaluatorBase:
    def __init__(self, cfg, lab2cname=None):
        self.cfg = cfg
        self._lab2cname = lab2cname

    def reset(self):
        raise NotImplementedError

    def process(self, mo, gt):
        raise NotImplementedError

    def evaluate(self):
        raise NotImplementedError


@EVALUATOR_REGISTRY.register()
class Classification(EvaluatorBase):
    """Accumulates argmax predictions of logits ``[B, C]`` against labels ``[B]``.

    ``evaluate()`` returns accuracy, error rate and macro-F1 (over the labels present in the ground truth, as
    Dassl), in percent, plus ``perclass_accuracy`` (the mean of per-class accuracies) when
    ``TEST.PER_CLASS_RESULT`` is on.
    """

    def __init__(self, cfg, lab2cname=None, **kwargs):
        super().__init__(cfg, lab2cname)
        self.reset()

    def reset(self):
        self._correct = 0
        self._total = 0
        self._y_true = []
        self._y_pred = []

    def process(self, mo: torch.Tensor, gt: torch.Tensor) -> None:
        pred = mo.argmax(dim=1)
        matches = pred.eq(gt).float()
        self._correct += int(matches.sum().item())
        self._total += gt.shape[0]
        self._y_true.extend(gt.cpu().tolist())
        self._y_pred.extend(pred.cpu().tolist())

    def evaluate(self) -> "OrderedDict[str, float]":
        if self._total == 0:
            raise RuntimeError("The evaluator saw no samples: the evaluation split is empty.")
        results = OrderedDict()
        acc = 100.0 * self._correct / self._total
        macro_f1 = 100.0 * f1_score(self._y_true, self._y_pred, average="macro", labels=np.unique(self._y_true))
        results["accuracy"] = acc
        results["error_rate"] = 100.0 - acc
        results["macro_f1"] = macro_f1
        results["total"] = self._total
        results["correct"] = self._correct
        logger.info(
            "=> result\n* total: %s\n* correct: %s\n* accuracy: %.1f%%\n* error: %.1f%%\n* macro_f1: %.1f%%",
            f"{self._total:,}", f"{self._correct:,}", acc, 100.0 - acc, macro_f1,
        )
        if self.cfg.TEST.PER_CLASS_RESULT:
            per_class = defaultdict(list)
            for t, p in zip(self._y_true, self._y_pred):
                per_class[t].append(int(t == p))
            accs = []
            for label in sorted(per_class):
                hits = per_class[label]
                acc_c = 100.0 * sum(hits) / len(hits)
                accs.append(acc_c)
                name = self._lab2cname[label] if self._lab2cname else label
                logger.info("* class: %s (%s)\ttotal: %d\tcorrect: %d\tacc: %.1f%%", label, name, len(hits),
                            sum(hits), acc_c)
            results["perclass_accuracy"] = float(np.mean(accs))
            logger.info("* average: %.1f%%", results["perclass_accuracy"])
        if self.cfg.TEST.COMPUTE_CMAT:
            cmat = confusion_matrix(self._y_true, self._y_pred, normalize="true")
            path = os.path.join(self.cfg.OUTPUT_DIR, "cmat.pt")
            torch.save(torch.from_numpy(cmat), path)
            logger.info("Confusion matrix saved to %s", path)
        return results


def build_evaluator(cfg, **kwargs):
    return EVALUATOR_REGISTRY.get(cfg.TEST.EVALUATOR)(cfg, **kwargs)
