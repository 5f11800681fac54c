"""A small Dassl-compatible core: ``from dassl.engine import X`` becomes ``from engine import X``.

See README ("Porting a CoOp-family trainer") for the full import map.
"""
from engine.config import get_cfg_default
from engine.registry import DATASET_REGISTRY, EVALUATOR_REGISTRY, TRAINER_REGISTRY, Registry
from engine.trainer import SimpleTrainer, TrainerBase, TrainerX


def build_trainer(cfg):
    """Build the trainer named by ``cfg.TRAINER.NAME`` (Dassl's ``build_trainer``)."""
    import trainers  # noqa: F401  (registers the trainers)

    if not cfg.TRAINER.NAME:
        raise ValueError("No trainer given: pass --trainer NAME (e.g. CoOp).")
    return TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)


__all__ = ["TRAINER_REGISTRY", "DATASET_REGISTRY", "EVALUATOR_REGISTRY", "Registry", "TrainerBase",
           "SimpleTrainer", "TrainerX", "build_trainer", "get_cfg_default"]
