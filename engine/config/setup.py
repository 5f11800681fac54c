"""Build the resolved config of a run in CoOp's merge order."""
from __future__ import annotations

from typing import Optional, Sequence

from yacs.config import CfgNode as CN

from .defaults import get_cfg_default
from .strict import merge_from_file, merge_from_list


def extend_cfg(cfg: CN) -> CN:
    """Add every registered trainer's ``TRAINER.<NAME>`` node (CoOp's ``extend_cfg``, one per trainer file)."""
    import trainers  # noqa: F401  (registers the trainers)
    from engine.registry import TRAINER_REGISTRY

    for name in TRAINER_REGISTRY.registered_names():
        hook = getattr(TRAINER_REGISTRY.get(name), "extend_cfg", None)
        if hook is not None:
            hook(cfg)
    return cfg


def build_cfg(
    dataset_config_file: str = "",
    config_file: str = "",
    opts: Sequence[str] = (),
    *,
    root: Optional[str] = None,
    output_dir: Optional[str] = None,
    resume: Optional[str] = None,
    seed: Optional[int] = None,
    trainer: Optional[str] = None,
    backbone: Optional[str] = None,
    transforms: Optional[Sequence[str]] = None,
    freeze: bool = True,
) -> CN:
    """defaults -> trainer defaults -> dataset YAML -> method YAML -> CLI flags -> opts.

    ``seed=0`` is a seed (CoOp's ``if args.seed:`` silently dropped it); ``None`` leaves the config's value.
    """
    cfg = extend_cfg(get_cfg_default())
    if dataset_config_file:
        merge_from_file(cfg, dataset_config_file)
    if config_file:
        merge_from_file(cfg, config_file)
    if root:
        cfg.DATASET.ROOT = root
    if output_dir:
        cfg.OUTPUT_DIR = output_dir
    if resume:
        cfg.RESUME = resume
    if seed is not None:
        cfg.SEED = seed
    if transforms:
        cfg.INPUT.TRANSFORMS = tuple(transforms)
    if trainer:
        cfg.TRAINER.NAME = trainer
    if backbone:
        cfg.MODEL.BACKBONE.NAME = backbone
    merge_from_list(cfg, list(opts))
    if freeze:
        cfg.freeze()
    return cfg
