"""Zero-shot CLIP (CoOp's ``ZeroshotCLIP`` and ``ZeroshotCLIP2``): nothing is trained.

``ZeroshotCLIP`` uses the dataset's hand-written template (``CUSTOM_TEMPLATES``); ``ZeroshotCLIP2`` averages the
7 ``IMAGENET_TEMPLATES_SELECT`` plus that template. Logits ``s * norm(f(x)) @ norm(W).T``, with ``W [C, D]`` the
class text features, computed once.
"""
from __future__ import annotations

from dataclasses import replace
from typing import List

import clip
from engine import TRAINER_REGISTRY
from engine.errors import UserError

from .base import PromptTrainer, clip_logits
from .facts import MethodFacts, ProtocolDefaults
from .templates import IMAGENET_TEMPLATES_SELECT, config_template


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(PromptTrainer):
    CFG_NODE = "ZSCLIP"
    FROZEN_IMAGE_FEATURES = True
    FACTS = MethodFacts(
        zero_shot=True,
        protocol=ProtocolDefaults("vit_b16", config_dir="CoOp", reported_as=("CLIP", "CLIP (zero-shot)")),
        toy_config="configs/trainers/CoOp/toy.yaml",
        paper="arXiv 2103.00020 (Radford et al., CLIP)",
        official_code="KaiyangZhou/CoOp trainers/zsclip.py:ZeroshotCLIP",
        docs="README.md#methods",
    )

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.ZSCLIP = CN()
        cfg.TRAINER.ZSCLIP.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.ZSCLIP.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters

    def templates(self) -> List[str]:
        return [config_template(self.cfg)]

    def build_model(self):
        cfg = self.cfg
        self.classnames = [c.replace("_", " ") for c in self.dm.dataset.classnames]
        backbone = clip.load(cfg.MODEL.BACKBONE.NAME, cfg.MODEL.BACKBONE.CACHE_DIR or None)
        self.check_input_size(backbone)
        self.precision = self.build_precision()
        self.clip_model = self.precision.prepare_backbone(backbone)
        self.logit_scale = self.clip_model.logit_scale
        self._zs_cache = {}
        self._eval_text_features = None
        self.text_weights = self.zeroshot_text_features(self.templates())  # [C, D]

    def train(self):
        raise UserError("ZeroshotCLIP has nothing to train: run it with --eval-only.")

    def before_test(self):
        pass

    def eval_text_features(self):
        return self.text_weights

    def logits_from_features(self, image_features):
        return clip_logits(image_features, self.text_weights, self.logit_scale, self.precision.head_dtype)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensembling over ``IMAGENET_TEMPLATES_SELECT`` + the dataset's template."""

    FACTS = replace(ZeroshotCLIP.FACTS, protocol=ProtocolDefaults("vit_b16", config_dir="CoOp"),
                    official_code="KaiyangZhou/CoOp trainers/zsclip.py:ZeroshotCLIP2")

    @staticmethod
    def extend_cfg(cfg):
        pass  # shares TRAINER.ZSCLIP

    def templates(self) -> List[str]:
        return IMAGENET_TEMPLATES_SELECT + [config_template(self.cfg)]
