"""CoCoOp: conditional context optimisation (Zhou et al., CVPR 2022; KaiyangZhou/CoOp ``trainers/cocoop.py``).

Per image ``x``: ``pi = h(norm f(x))`` with the meta-net ``h = Linear(D -> D//16) -> ReLU -> Linear(D//16 -> d_t)``;
context ``v_m(x) = v_m + pi`` (Eq. 2 of the paper, the same bias for all M vectors); prompt
``t_c(x) = [SOS] v_1(x)..v_M(x) {class}. [EOT]``; logits ``p(y=c|x) ∝ exp(s * cos(f(x), g(t_c(x))))``.
Loss: cross-entropy. The context is initialised by CoOp's rule (``CTX_INIT`` words -> ``N_CTX``).

The released code encodes the ``[C, L, d_t]`` prompts of each image in a Python loop; here the ``B*C`` prompts of a
batch go through the text encoder in batched calls of at most ``TEXT_CHUNK`` prompts (whole images per call), which
gives the same logits (tests/test_baselines.py) with fewer, larger calls.

Keys ``TRAINER.COCOOP.*`` (CoOp's ``extend_cfg``): ``N_CTX`` (16), ``CTX_INIT`` (""), ``PREC`` (fp16), and
``TEXT_CHUNK`` (this project: prompts per text-encoder call, bounding memory).

Official fp16 (``PREC fp16``, ``MASTER_WEIGHTS fp16``): ``ctx`` is created in ``clip_model.dtype`` and the meta-net
is ``.half()`` (``PromptLearner.__init__``), so the whole learner is fp16; the image features are normalised in
fp16 and fed to the meta-net as they are; logits ``logit_scale * imf_i @ text_features.t()`` and the cross-entropy
are fp16 (``CustomCLIP.forward``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from clip import CLIPBackbone
from engine import TRAINER_REGISTRY

from .base import PromptTrainer, clip_logits
from .facts import MethodFacts, ProtocolDefaults, official_configs
from .coop import CoOpPromptLearner
from .prompt_types import TextPrompts


class CoCoOpPromptLearner(CoOpPromptLearner):
    """CoOp's learner (``ctx [n_ctx, d_t]``, class buffers) plus the meta-net ``meta_net`` (released key names).

    ``conditioned_context(img [B, D]) -> [B, n_ctx, d_t]``; ``forward(img [B, D], suffix=None) -> TextPrompts``
    with embeddings ``[B*C, L, d_t]`` ordered image-major (rows ``b*C .. b*C + C-1`` are image ``b``'s prompts).
    """

    def __init__(self, backbone: CLIPBackbone, classnames: List[str], n_ctx: int = 16, ctx_init: str = ""):
        super().__init__(backbone, classnames, n_ctx, ctx_init)
        dim = backbone.embed_dim
        hidden = dim // 16
        if hidden < 1:
            raise ValueError(f"CoCoOp's meta-net maps D -> D//16 and this backbone's D is {dim}; use a CLIP with "
                             "an embedding width of at least 16.")
        self.meta_net = nn.Sequential(OrderedDict([
            ("linear1", nn.Linear(dim, hidden)),
            ("relu", nn.ReLU(inplace=True)),
            ("linear2", nn.Linear(hidden, backbone.text_width)),
        ]))

    def conditioned_context(self, image_features: torch.Tensor) -> torch.Tensor:
        """``v_m + h(x)`` for each image: ``[B, D]`` (L2-normalised features) -> ``[B, n_ctx, d_t]``."""
        bias = self.meta_net(image_features.to(self.ctx.dtype))  # [B, d_t]
        return self.ctx.unsqueeze(0) + bias.unsqueeze(1)

    def forward(self, image_features: torch.Tensor, suffix: Optional[torch.Tensor] = None) -> TextPrompts:
        ctx = self.conditioned_context(image_features)  # [B, n, d]
        b, _, d = ctx.shape
        c = self.n_cls
        suffix = self.token_suffix if suffix is None else suffix
        emb = torch.cat([
            self.token_prefix.unsqueeze(0).expand(b, -1, -1, -1),  # [B, C, 1, d]
            ctx.unsqueeze(1).expand(-1, c, -1, -1),  # [B, C, n, d]
            suffix.unsqueeze(0).expand(b, -1, -1, -1),  # [B, C, L-1-n, d]
        ], dim=2)
        return TextPrompts(emb.reshape(b * c, -1, d), self.eot_index.repeat(b))


@TRAINER_REGISTRY.register()
class CoCoOp(PromptTrainer):
    CFG_NODE = "COCOOP"
    IMAGE_CONDITIONED_TEXT = True
    FROZEN_IMAGE_FEATURES = True  # the meta-net reads the frozen image feature; the image path has no prompt
    FACTS = MethodFacts(
        protocol=ProtocolDefaults("vit_b16_c4_ep10_batch1_ctxv1"),
        toy_config="configs/trainers/CoCoOp/toy.yaml",
        released="trainers.released.drop_class_buffers",
        paper="arXiv 2203.05557 (Zhou et al., CVPR 2022)",
        official_code="KaiyangZhou/CoOp trainers/cocoop.py:CoCoOp",
        docs="README.md#methods",
        official_configs=official_configs("KaiyangZhou/CoOp", "CoCoOp", "CoCoOp", (
            "vit_b16_c16_ep10_batch1", "vit_b16_c4_ep10_batch1", "vit_b16_c4_ep10_batch1_ctxv1",
            "vit_b16_c8_ep10_batch1")),
    )

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.COCOOP = CN()
        cfg.TRAINER.COCOOP.N_CTX = 16  # number of context vectors (overridden by the word count of CTX_INIT)
        cfg.TRAINER.COCOOP.CTX_INIT = ""  # initialisation phrase, e.g. "a photo of a"; "" = random N(0, 0.02)
        cfg.TRAINER.COCOOP.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.COCOOP.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters
        cfg.TRAINER.COCOOP.TEXT_CHUNK = 1000  # most prompts per text-encoder call (whole images; >= 1 image)

    def check_cfg(self, cfg):
        super().check_cfg(cfg)
        if cfg.TRAINER.COCOOP.TEXT_CHUNK < 1:
            raise ValueError(f"TRAINER.COCOOP.TEXT_CHUNK is {cfg.TRAINER.COCOOP.TEXT_CHUNK}; it is the number of "
                             "prompts per text-encoder call and must be >= 1.")

    def build_prompt_learner(self, backbone, classnames):
        n = self.node
        return CoCoOpPromptLearner(backbone, classnames, n.N_CTX, n.CTX_INIT)

    def conditioned_text_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """Text features ``[B, C, D]`` of every image's prompts, ``TEXT_CHUNK // C`` images (>= 1) per call."""
        n_cls = self.prompt_learner.n_cls
        per_call = max(1, self.node.TEXT_CHUNK // n_cls)
        parts = []
        for start in range(0, image_features.shape[0], per_call):
            p = self.prompt_learner(image_features[start:start + per_call])
            feats = self.clip_model.encode_text_from_embeddings(p.embeddings, p.eot_index, p.deep)
            parts.append(feats.view(-1, n_cls, feats.shape[-1]))
        return torch.cat(parts)

    def logits_from_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """``[B, C]``: ``s * cos(f(x_b), g(t_c(x_b)))`` with each image's own prompts."""
        image_features = F.normalize(self.precision.head(image_features), dim=-1)
        return clip_logits(image_features, self.conditioned_text_features(image_features), self.logit_scale,
                           self.precision.head_dtype)
