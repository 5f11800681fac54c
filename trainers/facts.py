"""What a method declares about itself: ``MethodFacts``, set as ``FACTS`` on each registered trainer class.

Everything the experiment layer, the GPU check and the tests need to know about a method lives on its trainer class
(timm keeps everything about a model in its file and tests every registered model through ``list_models()``; here
``tests/test_method_contract.py`` checks every entry of ``TRAINER_REGISTRY``). Two facts stay trainer attributes
because a config can decide them at run time: ``FROZEN_IMAGE_FEATURES`` (LAMM on MaPLe learns its image path) and
``IMAGE_CONDITIONED_TEXT``; the precision node is ``CFG_NODE`` unless ``prec_node`` names another. A subclass or
variant overrides ``FACTS`` with ``dataclasses.replace(Parent.FACTS, ...)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Tuple

FewshotRule = Callable[[int, str], str]  # (shots, dataset stem) -> config name


def coop_fewshot_rule(stem: str) -> FewshotRule:
    """CoOp's few-shot recipe (KaiyangZhou/CoOp ``COOP.md``): 1 shot ``{stem}_ep50``, 2 and 4 shots
    ``{stem}_ep100``, 8 and 16 shots ``{stem}`` (200 epochs); ImageNet always ``{stem}_ep50``."""

    def rule(shots: int, dataset: str) -> str:
        if dataset == "imagenet" or shots <= 1:
            return f"{stem}_ep50"
        if shots <= 4:
            return f"{stem}_ep100"
        return stem

    return rule


@dataclass(frozen=True)
class ProtocolDefaults:
    """Default configs of one method (files ``configs/trainers/<config_dir>/<name>.yaml``).

    ``base2new`` is the base-to-new config and the default everywhere else; ``base2new_imagenet`` replaces it for
    ImageNet; ``transfer`` is the ImageNet-source config of xd and dg; ``fewshot`` maps (shots, dataset) to a
    config. Training runs with a config listed in ``dataset_configs`` get the per-dataset values of
    ``configs/trainers/<config_dir>/datasets/<dataset>.yaml`` as trailing opts, except few-shot runs when
    ``fewshot_dataset_values`` is False. ``reported_as`` names the method in the published numbers (default: the
    trainer name); ``reported_for`` maps config names to other names there (a variant reported as another method).
    """

    base2new: str
    base2new_imagenet: Optional[str] = None
    transfer: Optional[str] = None
    fewshot: Optional[FewshotRule] = None
    config_dir: Optional[str] = None
    dataset_configs: Tuple[str, ...] = ()
    fewshot_dataset_values: bool = True
    reported_as: Tuple[str, ...] = ()
    reported_for: Dict[str, Tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class OfficialConfig:
    """A config the official release ships (``source``: ``owner/repo path``) and its counterpart here (``ours``:
    ``configs/trainers/<ours>.yaml``), or ``why_not`` when it has none."""

    source: str
    ours: str = ""
    why_not: str = ""


@dataclass(frozen=True)
class MethodFacts:
    """The facts of one method.

    - ``zero_shot``: nothing is trained; every run is ``--eval-only`` and, on real weights, seed-free.
    - ``protocol``: the protocols' default configs (``None``: the config must be named on every run).
    - ``toy_config``: ``configs/trainers/<dir>/toy.yaml`` for the toy world, or ``no_toy_reason`` says why none.
    - ``tiny_opts``: config opts that fit the tests' 3-block tiny ViT (deep prompts shallower than the default).
    - ``prec_node``: the ``TRAINER.<NODE>`` holding ``PREC`` when it is not ``CFG_NODE`` (a method over a base).
    - ``gpu_check``: run by ``scripts/gpu_check.sh`` (False needs ``no_gpu_check_reason``).
    - ``released``: dotted name of the function that maps an official checkpoint, ``""`` when none is released.
    - ``paper``: arXiv id or venue; ``official_code``: ``owner/repo path:function`` of the reference code.
    - ``docs``: the page a reader starts from (``docs/<M>.md`` or ``README.md#methods``).
    - ``official_configs``: official config name -> :class:`OfficialConfig`; every config of the release.
    """

    zero_shot: bool = False
    protocol: Optional[ProtocolDefaults] = None
    toy_config: str = ""
    no_toy_reason: str = ""
    tiny_opts: Tuple[str, ...] = ()
    prec_node: str = ""
    gpu_check: bool = True
    no_gpu_check_reason: str = ""
    released: str = ""
    paper: str = ""
    official_code: str = ""
    docs: str = ""
    official_configs: Dict[str, OfficialConfig] = field(default_factory=dict)


def facts_of(trainer) -> MethodFacts:
    """The facts of a trainer class or instance (a class without ``FACTS`` has the defaults, which the contract test
    refuses)."""
    cls = trainer if isinstance(trainer, type) else type(trainer)
    return getattr(cls, "FACTS", None) or MethodFacts()


def precision_node(trainer) -> str:
    """The config node whose ``PREC``/``MASTER_WEIGHTS`` set the trainer's precision."""
    cls = trainer if isinstance(trainer, type) else type(trainer)
    return facts_of(cls).prec_node or getattr(cls, "CFG_NODE", "")


def official_configs(owner_repo: str, folder: str, ours_dir: str, names,
                     why_not: str = "") -> Dict[str, OfficialConfig]:
    """``{folder/name.yaml: OfficialConfig("owner_repo configs/trainers/folder/name.yaml", "ours_dir/name")}`` for
    releases whose config names this project keeps unchanged (with ``why_not``: configs without a counterpart)."""
    return {f"{folder}/{n}.yaml": OfficialConfig(f"{owner_repo} configs/trainers/{folder}/{n}.yaml",
                                                 "" if why_not else f"{ours_dir}/{n}", why_not) for n in names}
