"""MaPLe: multi-modal prompt learning (Khattak et al., CVPR 2023; muzairkhattak/multimodal-prompt-learning).

Text: ``[SOS] ctx_1..ctx_n <rest of CTX_INIT> {class}. [EOT]`` with ``ctx [n, d_t]`` initialised from the first
``N_CTX`` tokens of ``CTX_INIT`` (the rest of the phrase stays fixed text: "a photo of a", N_CTX 2 ->
``[SOS] ctx1 ctx2 of a {class}.``). Vision: ``proj(ctx) [n, d_v]`` appended to the image tokens (Eq. 5). Deeper
blocks ``1 <= i < J`` (``J = PROMPT_DEPTH``): text slots replaced by ``P_i [n, d_t]`` (``N(0, 0.02)``) and vision
slots by ``F_i(P_i)`` (Eq. 6), with ``F_i`` copies of one ``Linear(d_t -> d_v)``. Loss: cross-entropy on
``s * cos(f(x), g(t_c))``. Trainable parameters (N_CTX 2, J 9, ViT-B/16): ``2*512 + (512*768 + 768) * 9 + 8*2*512``
= 3,555,072.

Keys ``TRAINER.MAPLE.*`` (released ``extend_cfg``): ``N_CTX`` (2), ``CTX_INIT`` ("a photo of a"), ``PREC`` (fp16),
``PROMPT_DEPTH`` (9). The learner's parameter names are the released ``prompt_learner.*`` names (``ctx``, ``proj``,
``compound_prompts_text``, ``compound_prompt_projections``), and a released checkpoint (whole ``CustomCLIP``, keys
prefixed ``prompt_learner.``) loads after the prefix is stripped (``load_model_state_dict``).

Official fp16 (``PREC fp16``, ``MASTER_WEIGHTS fp16``): ``ctx`` in ``clip_model.dtype``, ``self.proj.half()``; the
compound prompts and projections fp32, their outputs cast ``.half()`` at each block (``clip/model.py``
``ResidualAttentionBlock_MaPLe.forward``); logits and cross-entropy fp16 (``CustomCLIP.forward``).
"""
from __future__ import annotations

from typing import Dict, List, Optional

import torch
import torch.nn as nn

from clip import CLIPBackbone
from engine import TRAINER_REGISTRY

from .base import PromptTrainer
from .facts import MethodFacts, ProtocolDefaults, official_configs
from .coop import CoOpPromptLearner
from .deep_prompts import CoupledProjections, DeepPrompts, check_depth, released_ctx_init
from .prompt_types import TextPrompts, VisionPrompts

RELEASED_PREFIX = "prompt_learner."


class MaPLePromptLearner(CoOpPromptLearner):
    """MaPLe's coupled prompts; a :class:`CoOpPromptLearner` (``ctx``, class buffers, ``assemble``) plus:

    - ``proj``: ``Linear(d_t -> d_v)``, first-block vision prompts ``proj(ctx) [n, d_v]``;
    - ``compound_prompts_text``: :class:`DeepPrompts`, ``depth - 1`` text prompts ``[n, d_t]``;
    - ``compound_prompt_projections``: :class:`CoupledProjections`, their vision counterparts ``[n, d_v]``.

    ``forward(suffix=None) -> TextPrompts`` (embeddings ``[C, L, d_t]`` with deep text prompts, as CoOp's learner
    so that class-token methods such as LAMM can pass a ``suffix``); ``vision_prompts() -> VisionPrompts``.
    ``config_node`` names the config keys in error messages (methods built on MaPLe pass their own node).
    """

    def __init__(self, backbone: CLIPBackbone, classnames: List[str], n_ctx: int = 2,
                 ctx_init: str = "a photo of a", depth: int = 9, *, config_node: str = "TRAINER.MAPLE"):
        backbone.require_vit("MaPLe")
        check_depth(f"{config_node}.PROMPT_DEPTH", depth, min(backbone.text_layers, backbone.vision_layers))
        super().__init__(backbone, classnames, n_ctx, released_ctx_init(ctx_init, n_ctx), truncate_init=True)
        d_t, d_v = backbone.text_width, backbone.vision_width
        self.proj = nn.Linear(d_t, d_v)
        self.compound_prompts_text = DeepPrompts(depth, self.n_ctx, d_t)
        self.compound_prompt_projections = CoupledProjections(depth - 1, d_t, d_v)

    @property
    def depth(self) -> int:
        return self.compound_prompts_text.depth

    def forward(self, suffix: Optional[torch.Tensor] = None) -> TextPrompts:
        return TextPrompts(self.assemble(self.context(), suffix), self.eot_index, self.compound_prompts_text.layers())

    def vision_prompts(self) -> VisionPrompts:
        deep = self.compound_prompt_projections(list(self.compound_prompts_text))
        return VisionPrompts(self.proj(self.ctx), [None, *deep])


def strip_released_prefix(state_dict: Dict[str, torch.Tensor], own_keys) -> Dict[str, torch.Tensor]:
    """A released MaPLe-repo state dict (the whole ``CustomCLIP``) -> the learner's keys; other states unchanged.

    Keys ``prompt_learner.<k>`` become ``<k>``; frozen CLIP weights and the class buffers are dropped.
    """
    if not any(k.startswith(RELEASED_PREFIX) for k in state_dict):
        return state_dict
    stripped = {k[len(RELEASED_PREFIX):]: v for k, v in state_dict.items() if k.startswith(RELEASED_PREFIX)}
    return {k: v for k, v in stripped.items() if k in own_keys}


@TRAINER_REGISTRY.register()
class MaPLe(PromptTrainer):
    CFG_NODE = "MAPLE"
    MODEL_NAME = "MultiModalPromptLearner"  # the released registered name (output/<name>/model.pth.tar-<E>)
    NEEDS_VIT = True
    # official fp16: ctx (clip_model.dtype) and proj (.half()) are fp16; the compound prompts (torch.empty) and their
    # projections (nn.Linear) stay fp32 and are cast with .half() where they enter the blocks (clip/model.py)
    OFFICIAL_FP32_PARAMS = ("compound_prompts_text", "compound_prompt_projections")
    FACTS = MethodFacts(
        protocol=ProtocolDefaults("vit_b16_c2_ep5_batch4_2ctx", transfer="vit_b16_c2_ep5_batch4_2ctx_cross_datasets"),
        toy_config="configs/trainers/MaPLe/toy.yaml",
        tiny_opts=("TRAINER.MAPLE.PROMPT_DEPTH", "3"),
        released="trainers.maple.strip_released_prefix",
        paper="arXiv 2210.03117 (Khattak et al., CVPR 2023)",
        official_code="muzairkhattak/multimodal-prompt-learning trainers/maple.py:MaPLe",
        docs="README.md#methods",
        official_configs=official_configs("muzairkhattak/multimodal-prompt-learning", "MaPLe", "MaPLe",
                                          ("vit_b16_c2_ep5_batch4_2ctx", "vit_b16_c2_ep5_batch4_2ctx_cross_datasets")),
    )

    @staticmethod
    def extend_cfg(cfg):
        from yacs.config import CfgNode as CN

        cfg.TRAINER.MAPLE = CN()
        cfg.TRAINER.MAPLE.N_CTX = 2  # number of learned context vectors per layer (text and, projected, vision)
        cfg.TRAINER.MAPLE.CTX_INIT = "a photo of a"  # first N_CTX tokens initialise ctx; the rest stays fixed text
        cfg.TRAINER.MAPLE.PREC = "fp16"  # fp16, bf16, amp or fp32 (fp32 on CPU unless MODEL.HALF_ON_CPU)
        cfg.TRAINER.MAPLE.MASTER_WEIGHTS = "fp16"  # PREC fp16 only: fp16 = official arithmetic, fp32 = fp32 masters
        cfg.TRAINER.MAPLE.PROMPT_DEPTH = 9  # J: blocks 0..J-1 of both towers hold prompts (1 = shallow MaPLe)

    def build_prompt_learner(self, backbone, classnames):
        n = self.node
        return MaPLePromptLearner(backbone, classnames, n.N_CTX, n.CTX_INIT, n.PROMPT_DEPTH)

    def vision_prompts(self) -> VisionPrompts:
        return self.prompt_learner.vision_prompts()

    def load_model_state_dict(self, name, state_dict):
        own = set(self._models[name].state_dict())
        super().load_model_state_dict(name, strip_released_prefix(state_dict, own))
